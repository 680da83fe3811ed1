"""The worker's store-trust settings: flags/env to the store's TrustPolicy."""

from __future__ import annotations

import pytest

from protos.errors import InvalidArgument
from runner_worker.settings import load_settings


def test_defaults_verify_and_do_not_require_signatures():
    policy = load_settings({}, {}).trust_policy
    assert policy.verify_integrity
    assert not policy.require_signature


def test_env_turns_checks_off_or_requires_signatures():
    env = {
        "RUNNERFLEET_VERIFY_INTEGRITY": "0",
        "RUNNERFLEET_REQUIRE_SIGNATURE": "true",
        "RUNNERFLEET_TRUSTED_KEYS": "/keys/a.pub, /keys/b.pub",
    }
    policy = load_settings({}, env).trust_policy
    assert not policy.verify_integrity
    assert policy.require_signature
    assert policy.trusted_keys == ("/keys/a.pub", "/keys/b.pub")


def test_require_signature_without_keys_refused():
    with pytest.raises(InvalidArgument, match="trusted_keys"):
        load_settings({}, {"RUNNERFLEET_REQUIRE_SIGNATURE": "1"})
