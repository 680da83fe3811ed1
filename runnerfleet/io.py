"""``runnerfleet.io``: IO descriptors for Service APIs (they live in ``runnerfleet.sdk.io``)."""

from runnerfleet.sdk.io import IODescriptor, NumpyNdarray

__all__ = ["IODescriptor", "NumpyNdarray"]
