"""IO descriptors beyond NumpyNdarray, each mapped onto Open Inference Protocol tensors.

The mapping is part of the wire contract (docs/MIGRATING.md lists it): a JSON document, a text,
an image or a file travels as one BYTES tensor of shape ``[1]`` whose ``content_type``
parameter names the media type; a DataFrame as one tensor per column, named by the column; a
Multipart as one tensor per part, named by the part. ModelMetadata describes these tensors,
so ``tritonclient`` users can call any Service API.
"""

from runnerfleet.sdk.io_descriptors.base import IODescriptor, WireTensor
from runnerfleet.sdk.io_descriptors.file import File
from runnerfleet.sdk.io_descriptors.image import Image
from runnerfleet.sdk.io_descriptors.json import JSON
from runnerfleet.sdk.io_descriptors.multipart import Multipart
from runnerfleet.sdk.io_descriptors.pandas import PandasDataFrame, PandasSeries
from runnerfleet.sdk.io_descriptors.text import Text

__all__ = [
    "IODescriptor",
    "WireTensor",
    "JSON",
    "Text",
    "PandasDataFrame",
    "PandasSeries",
    "Image",
    "File",
    "Multipart",
]
