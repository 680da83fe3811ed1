"""The gateway tests' Service plus a text API, for the HTTP tests of byte-carrying descriptors."""

from __future__ import annotations

from runnerfleet.io import Text
from tests.integration.gateway_service_app import svc

__all__ = ["svc"]


@svc.api(input=Text(), output=Text())
def shout(text: str) -> str:
    """Upper-cases text (no runner: the gateway answers itself)."""
    return text.upper() + "!"
