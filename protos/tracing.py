"""OpenTelemetry tracing for both processes, configured only by the standard ``OTEL_*`` variables.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` over gRPC, or ``console``);
then the SDK itself reads the rest (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_BSP_*``...), except
the sampler: ``OTEL_TRACES_SAMPLER`` (``always_on``, ``always_off``, ``traceidratio`` and their
``parentbased_`` forms, the spec's default ``parentbased_always_on``) and
``OTEL_TRACES_SAMPLER_ARG`` are read here into a ``Sampling`` whose level, rate and count
Triton's trace extension changes while the process runs (``protos.runtime_settings``).
``OTEL_SERVICE_NAME`` overrides the process's default name. This module is the one place
RunnerFleet reads ``OTEL_*`` (through ``protos.settings_loader.process_environ``, the
process's one read of the environment; the SDK reads its own variables itself).
``opentelemetry`` is imported only when tracing is on, so a disabled ``Tracing`` costs one
attribute check per hook.

Sampling is decided once per request, at its edge: ``start_request`` takes the caller's W3C
``traceparent`` and returns a ``RequestTrace``: the request's span only when it is sampled
(recording), else None and the ``traceparent`` to pass on, so that an unsampled request (99%
of them at 1% sampling) costs one parse and no span work in either process. A caller's
unsampled decision goes on unchanged (W3C: propagate what was received), and a root the
sampler drops goes on as an unsampled context (flags ``00``), so the worker, whose sampler is
parent-based, skips it as well.

Below the request span, spans are passed explicitly (no ambient context): ``start`` returns an
opaque span handle, which callers hand to child spans, to ``traceparent`` for the next hop,
and to ``end``. A W3C ``traceparent`` that does not parse is ignored: the span starts a new
trace, the request never fails for it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from protos.settings_loader import process_environ

__all__ = [
    "TRACEPARENT",
    "RequestTrace",
    "Sampling",
    "TraceParent",
    "Tracing",
    "UNTRACED",
    "configure_tracing",
    "parse_traceparent",
    "traceparent_from_metadata",
]

_log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
# version-trace_id-parent_id-flags, the 55 characters every version starts with
_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACEPARENT_LEN = 55
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


class TraceParent(NamedTuple):
    """A parsed W3C ``traceparent``: ids in lower-case hex, flags as an int."""

    trace_id: str
    span_id: str
    flags: int


class RequestTrace(NamedTuple):
    """One request's tracing, decided at its edge (``Tracing.start_request``)."""

    span: Any  # the request's recording span; None when off or not sampled
    trace_id: str | None  # for log lines, sampled or not; None without a trace context
    traceparent: str  # what the next hop gets when ``span`` is None ("": nothing)


UNTRACED = RequestTrace(None, None, "")  # no context came, none is sent: tracing off


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The W3C trace context in ``value``, or None when absent or malformed (never raises)."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    value = value.strip()
    if _TRACEPARENT_RE.match(value) is None or value.startswith("ff"):
        return None
    if len(value) > _TRACEPARENT_LEN and (value[_TRACEPARENT_LEN] != "-" or value[:2] == "00"):
        return None  # version 00 has exactly four fields; later ones may add "-..."
    trace_id, span_id = value[3:35], value[36:52]
    if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
        return None
    return TraceParent(trace_id, span_id, int(value[53:55], 16))


def _passed_on(parsed: TraceParent, flags: int) -> str:
    """A received context as the version-00 ``traceparent`` this process sends on."""
    return f"00-{parsed.trace_id}-{parsed.span_id}-{flags:02x}"


def traceparent_from_metadata(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The ``traceparent`` value of gRPC invocation metadata (or HTTP headers), if any."""
    if not metadata:
        return None
    for key, value in metadata:
        if key.lower() == TRACEPARENT:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return None


_TRACE_ID_LOW_64 = (1 << 64) - 1
_SAMPLERS = ("always_on", "always_off", "traceidratio")


class Sampling:
    """The root sampling decision: on or off, a ratio of trace ids, how many more traces.

    Decided as OpenTelemetry's ``TraceIdRatioBased`` decides (the trace id's low 64 bits
    below ``ratio * 2**64``), so a ratio from ``OTEL_TRACES_SAMPLER_ARG`` samples exactly as
    the SDK would. ``count`` (-1: no end) counts down per sampled root, as Triton's
    ``trace_count`` does. Read and changed from any thread (a lock guards the count).
    """

    def __init__(self, *, on: bool = True, ratio: float = 1.0, parent_based: bool = True) -> None:
        self.on = on and ratio > 0
        self.ratio = ratio if ratio > 0 else 1.0
        self.parent_based = parent_based
        self.count = -1
        self._lock = threading.Lock()

    @property
    def rate(self) -> int:
        """One trace in ``rate`` (Triton's ``trace_rate``)."""
        return max(1, round(1.0 / self.ratio))

    def update(self, *, on: bool | None, rate: int | None, count: int | None) -> None:
        with self._lock:
            if on is not None:
                self.on = on
            if rate is not None:
                self.ratio = 1.0 / rate
            if count is not None:
                self.count = count

    def take(self, trace_id: int, *, root: bool = True) -> bool:
        """Whether a span of ``trace_id`` is sampled (a root also spends one of ``count``)."""
        if not self.on or (trace_id & _TRACE_ID_LOW_64) >= round(self.ratio * (1 << 64)):
            return False
        if not root or self.count < 0:  # no count to spend: no lock on the request path
            return True
        with self._lock:
            if self.count == 0:
                return False
            if self.count > 0:
                self.count -= 1
        return True


def sampling_from_env(env: Mapping[str, str]) -> Sampling:
    """``OTEL_TRACES_SAMPLER`` (+ ``_ARG``) as a ``Sampling``; an unsupported one is logged and
    the spec's default (``parentbased_always_on``) used."""
    name = (env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
    parent_based = name.startswith("parentbased_")
    kind = name.removeprefix("parentbased_")
    if kind not in _SAMPLERS:
        _log.error(
            "OTEL_TRACES_SAMPLER=%s is not supported (%s, and parentbased_ of each): "
            "using parentbased_always_on", name, ", ".join(_SAMPLERS),
        )  # fmt: skip
        return Sampling()
    if kind == "always_off":
        return Sampling(on=False, parent_based=parent_based)
    ratio = 1.0
    if kind == "traceidratio":
        arg = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
        try:
            ratio = min(1.0, max(0.0, float(arg)))
        except ValueError:
            _log.error("OTEL_TRACES_SAMPLER_ARG=%s is not a number: using 1.0", arg)
    return Sampling(ratio=ratio, parent_based=parent_based)


def _otel_sampler(sampling: Sampling) -> Any:
    """An SDK sampler over ``sampling`` (parent-based when it says so)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult

    class _RateSampler(Sampler):
        def should_sample(  # type: ignore[override]
            self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
            attributes: Any = None, links: Any = None, trace_state: Any = None,
        ) -> Any:  # fmt: skip
            parent = trace.get_current_span(parent_context).get_span_context()
            state = parent.trace_state if parent.is_valid else None
            if sampling.take(trace_id, root=not parent.is_valid):
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
            return SamplingResult(Decision.DROP, None, state)

        def get_description(self) -> str:
            return f"RunnerFleetRate{{ratio={sampling.ratio}, on={sampling.on}}}"

    root = _RateSampler()
    return ParentBased(root) if sampling.parent_based else root


class Tracing:
    """Tracing switched off: no spans; a caller's valid ``traceparent`` is still passed on."""

    enabled = False
    sampling: Sampling | None = None  # the root decision's settings; None: nothing to sample

    def start_request(
        self,
        name: str,
        traceparent: str | None,
        *,
        attributes: Mapping[str, Any] | None = None,
    ) -> RequestTrace:
        """The request's span (kind SERVER) when sampled, else what to pass on (module doc)."""
        if not traceparent:
            return UNTRACED  # most requests: nothing to parse
        parsed = parse_traceparent(traceparent)
        if parsed is None:
            return UNTRACED
        return RequestTrace(None, parsed.trace_id, _passed_on(parsed, parsed.flags))

    def start(
        self,
        name: str,
        *,
        parent: Any = None,
        traceparent: str | None = None,
        kind: str = "internal",
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] = (),
        start_s: float | None = None,
    ) -> Any:
        """A started span (None when off). ``start_s`` is a past ``time.monotonic()``."""
        return None

    def end(
        self,
        span: Any,
        *,
        status: str = "OK",
        message: str = "",
        attributes: Mapping[str, Any] | None = None,
        end_s: float | None = None,
    ) -> None:
        """End ``span`` with a status code name (not OK marks it an error)."""

    def record(
        self,
        name: str,
        *,
        parent: Any,
        start_s: float,
        end_s: float,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] = (),
        status: str = "OK",
    ) -> Any:
        """A span that already happened, from two ``time.monotonic()`` readings."""
        return None

    def traceparent(self, span: Any) -> str | None:
        """The W3C ``traceparent`` that makes the next hop a child of ``span``."""
        return None

    def recording(self, span: Any) -> bool:
        """Whether ``span`` was sampled (children and timings are worth recording)."""
        return False

    def trace_id(self, span: Any) -> str | None:
        """``span``'s trace id in hex (None when off; sampled or not)."""
        return None

    def shutdown(self) -> None:
        """Flush and stop exporting (process exit)."""


class _OtelTracing(Tracing):
    """Tracing through the OpenTelemetry SDK with its own provider (no global state)."""

    enabled = True

    def __init__(self, provider: Any, sampling: Sampling | None = None) -> None:
        self.sampling = sampling
        from opentelemetry import trace
        from opentelemetry.sdk.trace.sampling import ParentBased
        from opentelemetry.trace import (
            Link,
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
        )

        self._provider = provider
        self._tracer = provider.get_tracer("runnerfleet")
        self._trace = trace
        self._link = Link
        self._status = Status
        self._error = StatusCode.ERROR
        self._span_context = SpanContext
        self._flags = TraceFlags
        self._non_recording = NonRecordingSpan
        # a parent-based sampler drops every child of an unsampled parent: skip the SDK then
        self._parent_based = isinstance(provider.sampler, ParentBased)
        self._kinds = {
            "internal": SpanKind.INTERNAL,
            "server": SpanKind.SERVER,
            "client": SpanKind.CLIENT,
        }
        # monotonic seconds -> epoch nanoseconds, fixed at start (spans never jump)
        self._epoch_offset_ns = time.time_ns() - time.monotonic_ns()

    def _ns(self, monotonic_s: float | None) -> int | None:
        if monotonic_s is None:
            return None
        return int(monotonic_s * 1e9) + self._epoch_offset_ns

    def _remote(self, traceparent: str | None) -> Any:
        """The caller's span (non-recording) from a W3C traceparent; None when malformed."""
        parsed = parse_traceparent(traceparent)
        return None if parsed is None else self._remote_span(parsed)

    def _remote_span(self, parsed: TraceParent) -> Any:
        context = self._span_context(
            trace_id=int(parsed.trace_id, 16),
            span_id=int(parsed.span_id, 16),
            is_remote=True,
            trace_flags=self._flags(parsed.flags & 0x01),
        )
        return self._non_recording(context)

    def start_request(
        self,
        name: str,
        traceparent: str | None,
        *,
        attributes: Mapping[str, Any] | None = None,
    ) -> RequestTrace:
        parsed = parse_traceparent(traceparent)  # a malformed one is ignored: a new root
        if parsed is not None and self._parent_based and not parsed.flags & 0x01:
            # the caller did not sample it: nothing to record here, its decision goes on
            return RequestTrace(None, parsed.trace_id, _passed_on(parsed, parsed.flags))
        span = self._tracer.start_span(
            name,
            context=None
            if parsed is None
            else self._trace.set_span_in_context(self._remote_span(parsed)),
            kind=self._kinds["server"],
            attributes=dict(attributes) if attributes else None,
        )
        ctx = span.get_span_context()
        trace_id = f"{ctx.trace_id:032x}"
        if span.is_recording():
            return RequestTrace(span, trace_id, "")
        # dropped by the sampler: the next hop learns so, and records nothing either
        return RequestTrace(None, trace_id, f"00-{trace_id}-{ctx.span_id:016x}-00")

    def start(
        self,
        name: str,
        *,
        parent: Any = None,
        traceparent: str | None = None,
        kind: str = "internal",
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] = (),
        start_s: float | None = None,
    ) -> Any:
        if parent is None and traceparent:
            parent = self._remote(traceparent)
        if parent is not None and self._parent_based and not parent.get_span_context().trace_flags:
            return parent  # unsampled upstream: nothing to record, pass its decision on
        span_links = [
            self._link(s.get_span_context()) for s in links if s is not None and s.is_recording()
        ]
        return self._tracer.start_span(
            name,
            context=None if parent is None else self._trace.set_span_in_context(parent),
            kind=self._kinds.get(kind, self._kinds["internal"]),
            attributes=dict(attributes) if attributes else None,
            links=span_links or None,
            start_time=self._ns(start_s),
        )

    def end(
        self,
        span: Any,
        *,
        status: str = "OK",
        message: str = "",
        attributes: Mapping[str, Any] | None = None,
        end_s: float | None = None,
    ) -> None:
        if span is None or not span.is_recording():
            if span is not None:
                span.end()
            return
        if attributes:
            span.set_attributes(dict(attributes))
        span.set_attribute("runnerfleet.status", status)
        if status != "OK":
            span.set_status(self._status(self._error, message or status))
        span.end(end_time=self._ns(end_s))

    def record(
        self,
        name: str,
        *,
        parent: Any,
        start_s: float,
        end_s: float,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] = (),
        status: str = "OK",
    ) -> Any:
        span = self.start(name, parent=parent, attributes=attributes, links=links, start_s=start_s)
        self.end(span, status=status, end_s=end_s)
        return span

    def traceparent(self, span: Any) -> str | None:
        if span is None:
            return None
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return None
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    def trace_id(self, span: Any) -> str | None:
        if span is None:
            return None
        ctx = span.get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else None

    def recording(self, span: Any) -> bool:
        return span is not None and span.is_recording()

    def shutdown(self) -> None:
        self._provider.shutdown()


def configure_tracing(
    default_service_name: str,
    environ: Mapping[str, str] | None = None,
    *,
    exporter: Any = None,
) -> Tracing:
    """The process's tracing from ``OTEL_*`` (or with ``exporter``, e.g. an in-memory one).

    Returns a disabled ``Tracing`` when no exporter is configured or the configuration cannot
    work (saying why in the log): tracing never stops a process from serving.
    """
    env = process_environ() if environ is None else environ
    name = (env.get("OTEL_TRACES_EXPORTER") or "none").strip().lower()
    if exporter is None and name in ("", "none"):
        return Tracing()
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Tracing()
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    service = env.get("OTEL_SERVICE_NAME") or default_service_name
    # the sampler variables as the SDK would read them (the process's), unless given here
    sampling = sampling_from_env({**process_environ(), **env})
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}), sampler=_otel_sampler(sampling)
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return _OtelTracing(provider, sampling)
    for item in (part.strip() for part in name.split(",")):
        made = _exporter(item, env)
        if made is not None:
            provider.add_span_processor(BatchSpanProcessor(made))
    return _OtelTracing(provider, sampling)


def _exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        _log.error("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console, none)", name)
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    if protocol.strip().lower() != "grpc":
        _log.error("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: use grpc", protocol)
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()
