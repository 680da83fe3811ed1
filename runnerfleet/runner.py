"""``runnerfleet.runner``: the old path of the Runner types (now in ``runnerfleet.sdk.runner``)."""

from runnerfleet.sdk.runner import (
    CUSTOM_RUNNER_VERSION,
    LocalBackend,
    Runner,
    RunnerBackend,
    RunnerMethod,
)

__all__ = ["Runner", "RunnerMethod", "RunnerBackend", "LocalBackend", "CUSTOM_RUNNER_VERSION"]
