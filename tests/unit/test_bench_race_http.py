"""The race's HTTP/JSON client speaks the gateway's KServe v2 JSON, and the report compares HTTP
rows with RunnerFleet over HTTP (bench/race_load.py, bench/race_report.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import race, race_report
from bench.race_load import http_answer, http_body, http_path
from protos import codec, http_codec
from protos import grpc_service_pb2 as pb


def test_kserve_body_is_the_request_the_gateway_decodes_bit_for_bit() -> None:
    x = (np.random.default_rng(3).standard_normal((2, 64)) / 7).astype(np.float32)
    body = http_body("kserve", "input__0", "FP32", x)

    req = http_codec.infer_request_from_http("heavy_mlp", "", body, None).request

    assert http_path("kserve", "heavy_mlp") == "/v2/models/heavy_mlp/infer"
    assert [(t.name, t.datatype, list(t.shape)) for t in req.inputs] == [
        ("input__0", "FP32", [2, 64])
    ]
    assert np.frombuffer(req.raw_input_contents[0], np.float32).tobytes() == x.tobytes()


def test_kserve_answer_is_read_by_name_from_the_gateway_json() -> None:
    y = np.array([0, 2, 1], dtype=np.int64)
    resp = pb.ModelInferResponse(model_name="iris_clf")
    for name, arr in (("other", np.zeros(3, np.float32)), ("output__0", y)):
        tensor, raw = codec.encode_output(name, arr)
        resp.outputs.append(tensor)
        resp.raw_output_contents.append(raw)
    doc = json.loads(http_codec.infer_response_to_http(resp).body)

    got = http_answer("kserve", "output__0", doc)

    assert got is not None
    assert np.array_equal(got, y)


def test_peer_bodies_carry_the_rows_and_their_answers_are_the_array() -> None:
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    for fmt in ("bentoml", "rayserve"):
        assert json.loads(http_body(fmt, "input__0", "FP64", x)) == {"x": x.tolist()}
        assert http_path(fmt, "iris_clf") == "/iris_clf"
        got = http_answer(fmt, "output__0", [0, 2])
        assert got is not None
        assert got.tolist() == [0, 2]
    with pytest.raises(ValueError, match="unknown HTTP format"):
        http_path("msgpack", "iris_clf")


def test_entries_called_over_http_are_their_own_families() -> None:
    assert race_report.family("triton-d500-i2") == "triton"
    assert race_report.family("triton-d500-i2-http") == "triton-http"
    assert race_report.family("rf-http") == "rf-http"
    assert race_report.family("bentoml-w2") == "bentoml"
    assert race_report.rf_family("bentoml") == "rf-http"
    assert race_report.rf_family("mlserver") == "rf"
    for entry in ("rf-http", "triton-d500-i2-http", "bentoml", "bentoml-w2", "rayserve"):
        assert race.is_http(entry)
        assert race_report.protocol(race_report.family(entry)) == "HTTP/JSON"
    assert not race.is_http("rf")


def test_quick_profile_measures_the_http_peers_at_c16_on_the_closed_loop_only() -> None:
    quick = race.PROFILES["quick"]
    assert {"rf-http", "bentoml", "rayserve"} <= set(quick.entries)
    pts = race.points_for(quick, quick.http_models, http=True)
    assert {p["mode"] for p in pts} == {"closed"}
    assert {(p["models"][0], p["c"]) for p in pts} >= {("iris_clf", 16), ("heavy_mlp", 16)}
    grpc_pts = race.points_for(quick, quick.http_models)
    assert {p["mode"] for p in grpc_pts} == {"closed", "open"}  # gRPC entries keep their shapes


def _run(rps: list[float]) -> list[dict]:
    pt = {
        "mode": "closed",
        "models": ["iris_clf"],
        "c": 16,
        "rows": 1,
        "p99_ms": 9.0,
        "requests": 100,
    }
    return [
        {"status": "ok", "cold_start_s": 1.0, "verified": {}, "points": [{**pt, "rps": r}]}
        for r in rps
    ]


def test_report_gives_rf_http_over_each_http_peers_best_configuration() -> None:
    res = {
        "entries": {
            "rf": _run([3000.0]),
            "rf-http": _run([1000.0, 1200.0, 1100.0]),
            "bentoml": _run([100.0]),
            "bentoml-w2": _run([200.0]),
            "rayserve": _run([400.0]),
        }
    }
    summary = race_report.aggregate(res)

    (row,) = race_report.http_ratios(summary, ["iris_clf"])

    assert row["rf"]["rps"] == 1100.0  # the median of the repeats
    assert row["bentoml"]["entry"] == "bentoml-w2"  # BentoML's best configuration
    assert row["bentoml"]["ratio"] == pytest.approx(5.5)
    assert row["rayserve"]["ratio"] == pytest.approx(2.75)
    assert "triton-http" not in row
