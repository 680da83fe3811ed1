"""The gateway tests' Service plus a text API, for the HTTP tests of byte-carrying descriptors.

``Utf8Text`` is a minimal descriptor of the kind that travels as one BYTES tensor (as BentoML's
``Text`` does): a ``media_type`` and ``wire_specs``; the HTTP route passes the body through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.integration.gateway_service_app import svc

__all__ = ["svc", "Utf8Text"]


class Utf8Text:
    """A str that travels as one BYTES element (UTF-8), served as text/plain over HTTP."""

    media_type = "text/plain"

    def validate(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):  # from the wire: one BYTES element
            item = value.reshape(-1)[0]
            return item.decode("utf-8") if isinstance(item, bytes) else str(item)
        out = np.empty(1, dtype=object)
        out[0] = str(value).encode("utf-8")
        return out

    def wire_specs(self, role: str) -> list[dict[str, Any]]:
        return [
            {
                "name": f"{role}__0",
                "datatype": "BYTES",
                "shape": [1],
                "content_type": self.media_type,
            }
        ]

    def to_spec(self, name: str) -> dict[str, Any]:
        return {**self.wire_specs("input")[0], "name": name}


@svc.api(input=Utf8Text(), output=Utf8Text())
def shout(text: str) -> str:
    """Upper-cases text (no runner: the gateway answers itself)."""
    return text.upper() + "!"
