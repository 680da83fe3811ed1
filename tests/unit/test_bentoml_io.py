"""IO descriptors (BentoML 1.x names) and their Open Inference Protocol tensor mapping."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydantic import BaseModel

import runnerfleet
from protos.errors import InvalidArgument, NotFound
from runnerfleet.io import (
    JSON,
    File,
    Image,
    Multipart,
    NumpyNdarray,
    PandasDataFrame,
    PandasSeries,
    Text,
    WireTensor,
)
from runnerfleet.sdk.context import Context, error_for_status
from runnerfleet.service import Service

pd = pytest.importorskip("pandas")
PIL = pytest.importorskip("PIL.Image")


class Item(BaseModel):
    name: str
    price: float


def roundtrip(descriptor, value):
    """to_wire as an output, then from_wire as an input (what a client relaying does)."""
    tensors = descriptor.to_wire(value, "input")
    return tensors, descriptor.from_wire(tensors)


def test_numpy_from_sample_and_wire():
    d = NumpyNdarray.from_sample(np.zeros((2, 3), np.float32))
    assert d.dtype == np.float32 and d.shape == (2, 3)
    assert d.wire_specs("input") == [{"name": "input__0", "datatype": "FP32", "shape": [2, 3]}]
    (t,), back = roundtrip(d, np.ones((2, 3), np.float64))  # float64 casts within its kind
    assert t.name == "input__0" and back.dtype == np.float32


def test_numpy_enforce_dtype_casts_within_kind_and_refuses_the_rest():
    enforced = NumpyNdarray(dtype="float32", enforce_dtype=True)
    assert enforced.validate(np.arange(3.0)).dtype == np.float32  # float64 -> float32: same kind
    assert enforced.validate(np.arange(3)).dtype == np.float32  # int -> float
    with pytest.raises(InvalidArgument, match="does not cast"):
        NumpyNdarray(dtype="int32", enforce_dtype=True).validate(np.array([1.7]))
    free = NumpyNdarray(dtype="int32")
    out = free.validate(np.array([1.7]))
    assert out.dtype == np.float64 and out[0] == 1.7  # no silent float -> int truncation


def test_json_with_pydantic_model():
    d = JSON(pydantic_model=Item)
    (t,), back = roundtrip(d, {"name": "pen", "price": 1.5})
    assert t.array.dtype == object and t.array.shape == (1,)
    assert t.content_type == "application/json"
    assert isinstance(back, Item) and back.price == 1.5
    with pytest.raises(InvalidArgument, match="invalid Item"):
        d.from_wire([WireTensor("input__0", np.array([b'{"name": 1}'], dtype=object))])
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        JSON().from_wire([WireTensor("input__0", np.array([b"{"], dtype=object))])
    assert JSON.from_sample(Item(name="a", price=1)).pydantic_model is Item
    assert JSON.from_sample({"a": 1}).sample == {"a": 1}
    (t,), back = roundtrip(JSON(), {"x": np.float32(2.5), "arr": np.arange(2)})
    assert back == {"x": 2.5, "arr": [0, 1]}


def test_text():
    (t,), back = roundtrip(Text(), "héllo")
    assert back == "héllo" and t.content_type == "text/plain"
    assert Text.from_sample("hi").sample == "hi"
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        Text().from_wire([WireTensor("input__0", np.array([b"\xff"], dtype=object))])
    with pytest.raises(InvalidArgument, match="exactly one input"):
        Text().from_wire([])


def test_dataframe_one_tensor_per_column():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4], "label": ["x", "y"]})
    d = PandasDataFrame.from_sample(frame)
    assert d.columns == ["a", "b", "label"]
    assert [(s["name"], s["datatype"]) for s in d.wire_specs("input")] == [
        ("a", "FP64"),
        ("b", "INT64"),
        ("label", "BYTES"),
    ]
    tensors, back = roundtrip(d, frame)
    assert [t.name for t in tensors] == ["a", "b", "label"]
    assert tensors[2].array.tolist() == [b"x", b"y"]
    assert back["label"].tolist() == ["x", "y"] and back["b"].tolist() == [3, 4]
    with pytest.raises(InvalidArgument, match="lacks columns"):
        d.from_wire(tensors[:2])
    with pytest.raises(InvalidArgument, match="must be int64"):
        PandasDataFrame(dtype={"b": "int64"}, enforce_dtype=True).validate(
            pd.DataFrame({"b": [1.5]})
        )


def test_series():
    d = PandasSeries.from_sample(pd.Series([1.0, 2.0]))
    (t,), back = roundtrip(d, pd.Series([3, 4]))
    assert t.array.dtype == np.float64 and back.tolist() == [3.0, 4.0]


def test_image_png_bytes():
    picture = PIL.new("RGB", (4, 2), color=(255, 0, 0))
    d = Image.from_sample(picture)
    assert d.pilmode == "RGB" and d.media_type == "image/png"
    (t,), back = roundtrip(d, picture)
    assert t.array[0][:8] == b"\x89PNG\r\n\x1a\n" and t.content_type == "image/png"
    assert back.size == (4, 2) and back.getpixel((0, 0)) == (255, 0, 0)
    (t,), back = roundtrip(Image(pilmode="L"), np.zeros((3, 3), np.uint8))  # arrays become images
    assert back.mode == "L"
    with pytest.raises(InvalidArgument, match="not a readable image"):
        Image().from_wire([WireTensor("input__0", np.array([b"nope"], dtype=object))])


def test_file(tmp_path):
    (t,), back = roundtrip(File(), b"\x00\x01binary")
    assert isinstance(back, io.BytesIO) and back.read() == b"\x00\x01binary"
    path = tmp_path / "doc.pdf"
    path.write_bytes(b"%PDF")
    assert File.from_sample(str(path)).media_type == "application/pdf"
    (t,), _ = roundtrip(File(), str(path))
    assert t.array[0] == b"%PDF"


def test_multipart_parts_as_keywords_with_context():
    svc = Service("multi")
    d = Multipart(text=Text(), arr=NumpyNdarray(dtype="float32"))
    assert [s["name"] for s in d.wire_specs("input")] == ["text", "arr"]

    @svc.api(input=d, output=JSON())
    def combine(text: str, arr: np.ndarray, ctx: runnerfleet.Context) -> dict:
        ctx.response.headers["x-rows"] = str(len(arr))
        return {"text": text, "sum": float(arr.sum()), "lang": ctx.request.headers.get("lang")}

    tensors = d.to_wire({"text": "hi", "arr": np.ones(3)}, "input")
    value = d.from_wire(list(reversed(tensors)))  # matched by name, not by order
    ctx = Context({"lang": "en", "priority": 1})
    assert svc.apis["combine"].call(value, ctx) == {"text": "hi", "sum": 3.0, "lang": "en"}
    assert ctx.response.headers == {"x-rows": "3"} and ctx.request.parameters["priority"] == 1
    with pytest.raises(InvalidArgument, match="lacks parts"):
        d.from_wire(tensors[:1])
    with pytest.raises(InvalidArgument, match="one tensor"):
        Multipart(frame=PandasDataFrame(columns=["a", "b"]))


def test_status_codes_map_to_errors():
    assert error_for_status(200, "api") is None
    assert isinstance(error_for_status(404, "api"), NotFound)
    assert isinstance(error_for_status(400, "api"), InvalidArgument)
    assert error_for_status(503, "api").code.value == "UNAVAILABLE"


def test_service_extras():
    model_like = type("M", (), {"tag": "m:1"})()
    svc = runnerfleet.Service("Extras", models=[model_like])
    assert svc.name == "extras" and svc.models == [model_like]

    @svc.api(input=Text(), output=Text(), name="Upper", route="/v1/upper")
    def upper(text: str) -> str:
        """Upper-cases text."""
        return text.upper()

    api = svc.apis["upper"]
    assert api.doc == "Upper-cases text." and api.route == "/v1/upper"
    assert api.call("abc") == "ABC" and api.context_param is None

    @svc.api(input=Text(), output=Text(), doc="explicit")
    def other(text: str) -> str:
        return text

    assert svc.apis["other"].doc == "explicit" and svc.apis["other"].route == "/other"
    calls = []
    svc.on_startup(lambda ctx: calls.append("up"))
    svc.on_shutdown(lambda ctx: calls.append("down"))
    svc.on_deployment(lambda: calls.append("deploy"))
    assert len(svc.startup_hooks) == len(svc.shutdown_hooks) == len(svc.deployment_hooks) == 1
    with pytest.raises(InvalidArgument, match="not a stored model"):
        runnerfleet.Service("bad", models=[object()])
