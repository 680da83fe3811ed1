"""Helpers for tests that start real RunnerFleet processes (never imports protos/)."""
