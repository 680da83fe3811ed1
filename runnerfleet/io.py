"""``runnerfleet.io``: IO descriptors for Service APIs (they live in ``runnerfleet.sdk.io``)."""

from runnerfleet.sdk.io import (
    JSON,
    File,
    Image,
    IODescriptor,
    Multipart,
    NumpyNdarray,
    PandasDataFrame,
    PandasSeries,
    Text,
    WireTensor,
)

__all__ = [
    "IODescriptor",
    "NumpyNdarray",
    "JSON",
    "Text",
    "PandasDataFrame",
    "PandasSeries",
    "Image",
    "File",
    "Multipart",
    "WireTensor",
]
