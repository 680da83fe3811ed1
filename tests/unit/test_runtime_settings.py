"""protos.runtime_settings: Triton's logging and trace settings over one process's logging and
tracing (the rpcs and routes are tested over real processes in tests/compat)."""

from __future__ import annotations

import io
import logging

import pytest

from protos.errors import FailedPrecondition, InvalidArgument, Unimplemented
from protos.logformat import formatter_for
from protos.runtime_settings import RuntimeSettings
from protos.tracing import Sampling, Tracing, configure_tracing, sampling_from_env


@pytest.fixture
def logger() -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own with one handler, as configure_logging sets up the root."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter_for("text"))
    log = logging.getLogger("rf-test-runtime-settings")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, out


def test_log_settings_start_from_the_process_level(logger) -> None:
    log, _ = logger
    assert RuntimeSettings(Tracing(), log).log_settings() == {
        "log_file": "",
        "log_info": True,
        "log_warning": True,
        "log_error": True,
        "log_verbose_level": 0,
        "log_format": "text",
    }
    log.setLevel(logging.WARNING)
    assert RuntimeSettings(Tracing(), log).log_settings()["log_info"] is False


def test_each_severity_switches_alone_and_verbose_adds_debug(logger) -> None:
    log, out = logger
    runtime = RuntimeSettings(Tracing(), log)
    now = runtime.update_log_settings({"log_warning": False, "log_verbose_level": 1})
    assert now["log_warning"] is False
    assert now["log_verbose_level"] == 1
    log.debug("debug-line")
    log.info("info-line")
    log.warning("warning-line")
    log.error("error-line")
    written = out.getvalue()
    assert "debug-line" in written
    assert "info-line" in written
    assert "error-line" in written
    assert "warning-line" not in written
    runtime.update_log_settings({"log_verbose_level": 0, "log_info": False, "log_warning": True})
    log.debug("debug-two")
    log.info("info-two")
    log.warning("warning-two")
    assert "debug-two" not in out.getvalue()
    assert "info-two" not in out.getvalue()
    assert "warning-two" in out.getvalue()


def test_log_format_changes_every_handler(logger) -> None:
    log, out = logger
    runtime = RuntimeSettings(Tracing(), log)
    assert runtime.update_log_settings({"log_format": "json"})["log_format"] == "json"
    log.info("as-json")
    assert '"message": "as-json"' in out.getvalue()
    assert runtime.update_log_settings({"log_format": "default"})["log_format"] == "text"


@pytest.mark.parametrize(
    "changes",
    [
        {"log_colour": True},
        {"log_info": "yes"},
        {"log_verbose_level": -1},
        {"log_verbose_level": True},
        {"log_format": "ISO8601"},
        {"log_file": "/var/log/rf.log"},
    ],
)
def test_a_bad_log_setting_is_refused_and_changes_nothing(logger, changes) -> None:
    log, _ = logger
    runtime = RuntimeSettings(Tracing(), log)
    before = runtime.log_settings()
    with pytest.raises(InvalidArgument):
        runtime.update_log_settings({"log_info": False, **changes})
    assert runtime.log_settings() == before


def test_trace_settings_of_a_process_without_an_exporter(logger) -> None:
    runtime = RuntimeSettings(Tracing(), logger[0])
    assert runtime.trace_settings() == {
        "trace_mode": ["opentelemetry"],
        "trace_level": ["OFF"],
        "trace_rate": ["1"],
        "trace_count": ["-1"],
        "log_frequency": ["0"],
    }
    assert runtime.trace_settings("iris_clf") == runtime.trace_settings()
    with pytest.raises(FailedPrecondition, match="OTEL_TRACES_EXPORTER"):
        runtime.update_trace_settings({"trace_level": ["TIMESTAMPS"]})


def test_trace_rate_level_and_count_drive_the_sampler(logger) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing = configure_tracing("rf-test", {}, exporter=exporter)
    runtime = RuntimeSettings(tracing, logger[0])
    assert runtime.trace_settings()["trace_level"] == ["TIMESTAMPS"]

    def roots(n: int) -> int:
        sampled = 0
        for _ in range(n):
            trace = tracing.start_request("req", None)
            if trace.span is not None:
                sampled += 1
                tracing.end(trace.span)
        return sampled

    assert roots(20) == 20
    runtime.update_trace_settings({"trace_count": ["3"]})
    assert roots(10) == 3
    assert runtime.trace_settings()["trace_count"] == ["0"]  # counted down, as Triton's
    runtime.update_trace_settings({"trace_count": None, "trace_level": ["OFF"]})
    assert runtime.trace_settings()["trace_count"] == ["-1"]  # no value: the starting one
    assert roots(10) == 0
    now = runtime.update_trace_settings({"trace_level": ["TIMESTAMPS"], "trace_rate": ["4"]})
    assert now["trace_rate"] == ["4"]
    assert 100 < roots(1000) < 400  # one in four by trace id
    # a caller's sampled decision is still followed (parent-based by default)
    runtime.update_trace_settings({"trace_rate": ["1000000"]})
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert tracing.start_request("child", parent).span is not None


@pytest.mark.parametrize(
    ("changes", "model", "error"),
    [
        ({"trace_rate": ["0"]}, "", InvalidArgument),
        ({"trace_rate": ["x"]}, "", InvalidArgument),
        ({"trace_rate": ["1", "2"]}, "", InvalidArgument),
        ({"trace_count": ["-2"]}, "", InvalidArgument),
        ({"trace_level": ["TENSORS"]}, "", InvalidArgument),
        ({"trace_mode": ["triton"]}, "", InvalidArgument),
        ({"trace_file": ["/tmp/t.json"]}, "", InvalidArgument),
        ({"log_frequency": ["10"]}, "", InvalidArgument),
        ({"trace_rate": ["10"]}, "iris_clf", Unimplemented),
    ],
)
def test_bad_trace_settings_are_refused(logger, changes, model, error) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracing = configure_tracing("rf-test", {}, exporter=InMemorySpanExporter())
    runtime = RuntimeSettings(tracing, logger[0])
    before = runtime.trace_settings()
    with pytest.raises(error):
        runtime.update_trace_settings(changes, model)
    assert runtime.trace_settings() == before


@pytest.mark.parametrize(
    ("env", "on", "rate", "parent_based"),
    [
        ({}, True, 1, True),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, False, 1, False),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
            True,
            100,
            True,
        ),  # fmt: skip
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            True,
            4,
            False,
        ),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, True, 1, True),  # unsupported: the default
    ],
)
def test_sampling_starts_from_the_otel_sampler_variables(env, on, rate, parent_based) -> None:
    sampling = sampling_from_env(env)
    assert (sampling.on, sampling.rate, sampling.parent_based) == (on, rate, parent_based)


def test_sampling_decides_by_trace_id_as_the_sdk_ratio_sampler_does() -> None:
    from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

    sampling, sdk = Sampling(ratio=0.3), TraceIdRatioBased(0.3)
    for trace_id in range(1, 2**64, 2**64 // 997):
        want = sdk.should_sample(None, trace_id, "x").decision is Decision.RECORD_AND_SAMPLE
        assert sampling.take(trace_id) is want


def test_caller_chosen_keys_and_values_are_cut_in_messages(logger) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    runtime = RuntimeSettings(
        configure_tracing("rf-test", {}, exporter=InMemorySpanExporter()), logger[0]
    )
    long = "x" * 10_000
    attempts = [
        lambda: runtime.update_log_settings({long: True}),
        lambda: runtime.update_log_settings({f"k{i}": True for i in range(1000)}),
        lambda: runtime.update_log_settings({"log_format": long}),
        lambda: runtime.update_trace_settings({"trace_level": [long]}),
        lambda: runtime.update_trace_settings({"trace_rate": ["9" * 5000]}),
        lambda: runtime.update_trace_settings({"trace_count": ["-" + "9" * 4000]}),
        lambda: runtime.update_trace_settings({"trace_rate": ["1"] * 10_000}),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidArgument) as error:
            attempt()
        assert len(error.value.message) < 600, error.value.message[:200]
