"""Tracing: traceparent parsing, OTEL_* configuration, and the batcher's spans (in-memory SDK)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from protos.logformat import JsonFormatter, configure_logging, request_scope
from protos.tracing import (
    Tracing,
    configure_tracing,
    parse_traceparent,
    traceparent_from_metadata,
)
from runner_worker.batcher import Batcher, BatchPolicy
from runner_worker.tracing import BatchSpans

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extra
        b"\xff\xfe",
    ],
)
def test_malformed_traceparent_is_ignored(value) -> None:
    assert parse_traceparent(value) is None


def test_traceparent_parses_and_is_found_in_metadata() -> None:
    parsed = parse_traceparent(GOOD)
    assert parsed is not None
    assert parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (parsed.span_id, parsed.flags) == ("00f067aa0ba902b7", 1)
    assert parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
    metadata = (("authorization", "Bearer x"), ("Traceparent", GOOD.encode()))
    assert traceparent_from_metadata(metadata) == GOOD
    assert traceparent_from_metadata(None) is None


def test_tracing_is_off_without_an_exporter_and_never_imports_the_sdk() -> None:
    assert not configure_tracing("x", {}).enabled
    assert not configure_tracing("x", {"OTEL_TRACES_EXPORTER": "none"}).enabled
    disabled = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    assert not configure_tracing("x", disabled).enabled
    code = (
        "import sys; from protos.tracing import configure_tracing; "
        "t = configure_tracing('x', {}); t.end(t.start('s')); "
        "import runner_worker.inference; "
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_otlp_configuration_from_env() -> None:
    tracing = configure_tracing(
        "default-name",
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "svc-from-env"},
    )
    try:
        assert tracing.enabled
        span = tracing.start("s")
        assert span.resource.attributes["service.name"] == "svc-from-env"
        tracing.end(span)
    finally:
        tracing.shutdown()
    wrong = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    tracing = configure_tracing("x", wrong)  # no exporter that could work: spans go nowhere
    tracing.shutdown()


@pytest.fixture
def memory() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = configure_tracing("test", {}, exporter=exporter)
    yield tracing, exporter
    tracing.shutdown()


def test_remote_parent_and_malformed_parent(memory) -> None:
    tracing, exporter = memory
    child = tracing.start("child", traceparent=GOOD, kind="server")
    assert tracing.trace_id(child) == "4bf92f3577b34da6a3ce929d0e0e4736"
    tracing.end(child, status="NOT_FOUND", message="no model")
    root = tracing.start("root", traceparent="00-not-a-trace-01")
    assert tracing.trace_id(root) not in (None, "4bf92f3577b34da6a3ce929d0e0e4736")
    tracing.end(root)
    next_hop = parse_traceparent(tracing.traceparent(root))
    assert next_hop is not None
    assert next_hop.trace_id == tracing.trace_id(root)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["child"].parent.span_id == 0x00F067AA0BA902B7
    assert spans["child"].status.status_code.name == "ERROR"
    assert spans["child"].attributes["runnerfleet.status"] == "NOT_FOUND"
    assert spans["root"].parent is None


def test_batch_spans_link_every_request(memory) -> None:
    tracing, exporter = memory

    async def run_batch(arrays):
        await asyncio.sleep(0.01)
        return [arrays[0] * 2]

    async def main():
        batcher = Batcher(
            run_batch,
            BatchPolicy(max_batch_size=8, adaptive=False),
            name="m.predict",
            tracer=BatchSpans(tracing, "m", "v1", "predict"),
        )
        blocker = asyncio.ensure_future(batcher.submit([np.ones((1, 2))]))  # untraced
        await asyncio.sleep(0)
        spans = [tracing.start(f"request {i}", kind="server") for i in range(3)]
        outs = await asyncio.gather(
            *(batcher.submit([np.full((1, 2), i)], trace=s) for i, s in enumerate(spans))
        )
        await blocker
        for s in spans:
            tracing.end(s)
        await batcher.close()
        return spans, outs

    requests, outs = asyncio.run(main())
    assert [o[0][0, 0] for o in outs] == [0, 2, 4]
    finished = exporter.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    request_ids = {r.get_span_context().span_id for r in requests}
    assert len(by_name["queue wait"]) == 3
    assert {s.parent.span_id for s in by_name["queue wait"]} == request_ids
    traced_batches = [b for b in by_name["batch"] if b.links]
    (batch,) = traced_batches  # the three queued behind the untraced one form one batch
    assert {link.context.span_id for link in batch.links} == request_ids
    assert batch.attributes["runnerfleet.batch_rows"] == 3
    assert batch.attributes["runnerfleet.model"] == "m"
    (call,) = [c for c in by_name["model call"] if c.parent.span_id == batch.context.span_id]
    assert batch.start_time <= call.start_time <= call.end_time <= batch.end_time
    for wait in by_name["queue wait"]:
        assert wait.end_time <= batch.start_time + 1_000_000  # 1 ms of clock slack


def test_json_log_lines_carry_request_and_trace_ids(capsys) -> None:
    configure_logging("INFO", "json")
    try:
        log = logging.getLogger("rf.test")
        log.info("outside")
        with request_scope("req-7", "4bf92f3577b34da6a3ce929d0e0e4736"):
            log.warning("inside %d", 1)
        with request_scope("req-8", None):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    assert "request_id" not in lines[0]
    assert lines[0]["message"] == "outside"
    assert lines[1]["request_id"] == "req-7"
    assert lines[1]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert lines[1]["level"] == "WARNING"
    assert lines[1]["message"] == "inside 1"
    assert lines[2]["request_id"] == "req-8"
    assert "trace_id" not in lines[2]
    assert "ValueError: boom" in lines[2]["exc"]
    assert JsonFormatter().format(logging.makeLogRecord({"msg": "x"})).startswith("{")


def test_unsampled_parent_records_nothing_and_passes_its_decision_on(memory) -> None:
    tracing, exporter = memory  # the SDK's default sampler: parent-based
    unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    span = tracing.start("worker ModelInfer", traceparent=unsampled, kind="server")
    assert not tracing.recording(span)
    assert tracing.trace_id(span) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.traceparent(span).endswith("-00")
    child = tracing.start("forward", parent=span)
    assert not tracing.recording(child)
    tracing.end(child)
    tracing.end(span)
    assert exporter.get_finished_spans() == ()


def test_start_request_decides_once_and_passes_an_unsampled_context_on(monkeypatch) -> None:
    # the SDK reads its sampler from the environment: drop every root
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exporter = InMemorySpanExporter()
    tracing = configure_tracing("test", {}, exporter=exporter)
    try:
        root = tracing.start_request("gateway ModelInfer", None)
        assert root.span is None  # dropped at the edge: no span work for it anywhere
        passed = parse_traceparent(root.traceparent)
        assert passed is not None
        assert passed.flags == 0
        assert passed.trace_id == root.trace_id  # its log lines still carry the trace id
        unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        child = tracing.start_request("worker ModelInfer", f" {unsampled} ")
        assert child == (None, "4bf92f3577b34da6a3ce929d0e0e4736", unsampled)  # as received
        sampled = tracing.start_request("worker ModelInfer", GOOD, attributes={"a": "b"})
        assert tracing.recording(sampled.span)
        assert (sampled.trace_id, sampled.traceparent) == ("4bf92f3577b34da6a3ce929d0e0e4736", "")
        tracing.end(sampled.span)
        (span,) = exporter.get_finished_spans()
        assert span.parent.span_id == 0x00F067AA0BA902B7
        assert span.attributes["a"] == "b"
        assert span.kind.name == "SERVER"
    finally:
        tracing.shutdown()


def test_start_request_with_tracing_off_passes_a_valid_context_on() -> None:
    off = Tracing()
    assert off.start_request("r", None) == (None, None, "")
    assert off.start_request("r", "garbage") == (None, None, "")
    assert off.start_request("r", GOOD + "\n") == (None, "4bf92f3577b34da6a3ce929d0e0e4736", GOOD)
    later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"
    assert off.start_request("r", later).traceparent == GOOD  # sent on as version 00


def test_a_request_without_an_id_gets_one_only_when_logged_and_keeps_it(capsys) -> None:
    from protos.logformat import request_ids

    configure_logging("INFO", "json")
    try:
        log = logging.getLogger("rf.test")
        scope = request_scope("", "4bf92f3577b34da6a3ce929d0e0e4736")
        with scope:
            log.info("first")
            with request_scope("inner", None):
                assert request_ids() == ("inner", None)
            log.info("second")
        assert request_ids() is None
        with scope:  # the request's last line, in the same scope object
            log.info("third")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    ids = {line["request_id"] for line in lines}
    assert len(ids) == 1
    assert len(ids.pop()) == 16
    assert all(line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" for line in lines)
