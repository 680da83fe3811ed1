"""``runnerfleet.service``: the old path of Service (it lives in ``runnerfleet.sdk.service``)."""

from runnerfleet.sdk.service import MAX_NAME_CHARS, Service, ServiceApi, validate_name

__all__ = ["Service", "ServiceApi", "validate_name", "MAX_NAME_CHARS"]
