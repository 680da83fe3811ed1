"""`--service module:attr`: run a runnerfleet.Service's APIs in the gateway, runners on workers.

Each `@svc.api` is served as a model named by the API. Inside the gateway every runner of the
service is bound to a RemoteBackend, so `runner.<method>.run()` / `async_run()` in user code
send a ModelInferRequest for that runner's model (exact store version) through the same router
and forwarder as client requests. Sync API functions run in a thread pool (a blocking `run()`
there waits on the event loop); async ones run on the loop and must use `async_run()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import time
from typing import Any

import numpy as np

from api_gateway.forwarder import Forwarder
from api_gateway.header import RequestHeader
from protos import codec, model_config_pb2
from protos import grpc_service_pb2 as pb
from protos.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    RunnerFleetError,
)
from runnerfleet.sdk.context import Context, error_for_status
from runnerfleet.sdk.io_descriptors import WireTensor
from runnerfleet.sdk.service_loader import load_service

__all__ = ["RemoteBackend", "ServiceApiHost", "load_service"]

_log = logging.getLogger(__name__)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
_INPUT, _OUTPUT = "input__0", "output__0"
_PLATFORM = "runnerfleet_service"


class RemoteBackend:
    """A RunnerBackend whose calls go to workers via the gateway's router and forwarder."""

    def __init__(self, forwarder: Forwarder, loop: asyncio.AbstractEventLoop) -> None:
        self._forwarder = forwarder
        self._loop = loop

    async def async_call(self, runner: Any, method: str, args: tuple, kwargs: dict) -> Any:
        """Send one runner method call to a worker hosting the runner's model; numpy out."""
        if kwargs:
            raise InvalidArgument(
                f"runner {runner.name}.{method}: remote calls take positional arrays only"
            )
        name, version = runner.address
        request = codec.encode_request(
            name, [_to_numpy(a) for a in args], model_version=version, method=method
        )
        header = RequestHeader(name, version, "")
        payload = await self._forwarder.forward(
            header, request.SerializeToString(), _deadline.get()
        )
        outputs = codec.decode_response_outputs(pb.ModelInferResponse.FromString(payload))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def call(self, runner: Any, method: str, args: tuple, kwargs: dict) -> Any:
        """Blocking call from an API function running in a worker thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise FailedPrecondition(
                f"runner {runner.name}.{method}.run() called on the gateway's event loop; "
                "in an async API use `await runner.<method>.async_run(...)`"
            )
        context = contextvars.copy_context()
        coro = self.async_call(runner, method, args, kwargs)
        future = asyncio.run_coroutine_threadsafe(_in_context(context, coro), self._loop)
        return future.result()


def _to_numpy(value: Any) -> np.ndarray:
    """A call argument as numpy (torch tensors from any device included)."""
    detach = getattr(value, "detach", None)
    if detach is not None:
        return np.asarray(detach().to("cpu").numpy())
    return np.asarray(value)


async def _in_context(context: contextvars.Context, coro: Any) -> Any:
    _deadline.set(context.get(_deadline))
    return await coro


class _ApiStats:
    def __init__(self, name: str) -> None:
        self.stats = pb.ModelStatistics(name=name, version="")

    def record(self, ok: bool, duration_s: float) -> None:
        slot = self.stats.inference_stats.success if ok else self.stats.inference_stats.fail
        slot.count += 1
        slot.ns += int(duration_s * 1e9)
        if ok:
            self.stats.inference_count += 1
            self.stats.execution_count += 1
            self.stats.last_inference = int(time.time() * 1000)


class ServiceApiHost:
    """The APIs of one Service, served by the gateway itself."""

    def __init__(self, service: Any, forwarder: Forwarder, max_threads: int = 64) -> None:
        self.service = service
        self._apis = dict(service.apis)
        self._stats = {name: _ApiStats(name) for name in self._apis}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_threads, thread_name_prefix="service-api"
        )
        self._forwarder = forwarder
        self._bound = False
        self._state: dict[str, Any] = {}  # Context.state, filled by on_startup hooks
        self._shutdown_hooks = list(service.shutdown_hooks)

    @classmethod
    def load(cls, spec: str, forwarder: Forwarder) -> ServiceApiHost:
        """Import the service named by `spec` (module:attr)."""
        return cls(load_service(spec), forwarder)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind every runner of the service to a RemoteBackend on `loop`."""
        backend = RemoteBackend(self._forwarder, loop)
        for runner in self.service.runners:
            runner.bind(backend)
        self._bound = True

    def __contains__(self, name: str) -> bool:
        return name in self._apis

    def names(self) -> list[str]:
        """The API names (each served as a model)."""
        return sorted(self._apis)

    def runner_models(self) -> list[tuple[str, str]]:
        """(name, version) of every runner's model: the APIs are ready when all are routable."""
        return [r.address for r in self.service.runners]  # where RemoteBackend sends its calls

    async def startup(self) -> None:
        """Run the service's on_deployment, then on_startup hooks (sync hooks in a thread)."""
        for hook in self.service.deployment_hooks:
            await _call_hook(hook)
        for hook in self.service.startup_hooks:
            await _call_hook(hook, self._hook_context())

    async def shutdown(self) -> None:
        """Run the service's on_shutdown hooks once; a failing hook is logged, the rest run."""
        hooks, self._shutdown_hooks = self._shutdown_hooks, []
        for hook in hooks:
            try:
                await _call_hook(hook, self._hook_context())
            except Exception:  # noqa: BLE001 - user code at shutdown: report, go on
                _log.exception("on_shutdown hook %s failed", getattr(hook, "__name__", hook))

    def _hook_context(self) -> Context:
        return Context(state=self._state)

    async def infer(self, header: RequestHeader, request: bytes, deadline: float | None) -> bytes:
        """Decode the input tensors, run the API (validated in and out), encode the answer."""
        if not self._bound:
            self.bind(asyncio.get_running_loop())
        api = self._apis[header.model_name]
        started_s = time.perf_counter()
        ok = False
        try:
            message = pb.ModelInferRequest.FromString(request)
            arrays = codec.decode_request_inputs(message)
            tensors = [
                WireTensor(t.name, a, _string_param(t.parameters, "content_type"))
                for t, a in zip(message.inputs, arrays, strict=True)
            ]
            ctx = Context(_parameters(message.parameters), state=self._state)
            _deadline.set(deadline)
            timeout_s = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                outputs = await asyncio.wait_for(self._run(api, tensors, ctx), timeout_s)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"API {api.name} did not finish within the deadline"
                ) from None
            error = error_for_status(ctx.response.status_code, api.name)
            if error is not None:
                raise error
            response = codec.encode_response(
                message, [t.array for t in outputs], [t.name for t in outputs]
            )
            for tensor, out in zip(outputs, response.outputs, strict=True):
                if tensor.content_type:
                    out.parameters["content_type"].string_param = tensor.content_type
            for key, value in ctx.response.headers.items():
                response.parameters[str(key)].string_param = str(value)
            ok = True
            return response.SerializeToString()
        finally:
            self._stats[api.name].record(ok, time.perf_counter() - started_s)

    async def _run(self, api: Any, tensors: list[WireTensor], ctx: Context) -> list[WireTensor]:
        try:
            args, kwargs = api.bind_args(api.input.from_wire(tensors), ctx)
            if api.is_async:
                result = await api.func(*args, **kwargs)
            else:
                loop = asyncio.get_running_loop()
                context = contextvars.copy_context()
                call = functools.partial(api.func, *args, **kwargs)
                result = await loop.run_in_executor(self._executor, context.run, call)
            return list(api.output.to_wire(result, "output"))
        except RunnerFleetError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: report, keep serving
            raise Internal(f"API {api.name} failed: {type(exc).__name__}: {exc}") from exc

    def metadata(self, name: str) -> pb.ModelMetadataResponse:
        """ModelMetadata synthesised from the API's io specs (one entry per wire tensor)."""
        api = self._apis[name]
        response = pb.ModelMetadataResponse(name=name, versions=[""], platform=_PLATFORM)
        for specs, target in (
            (api.input.wire_specs("input"), response.inputs),
            (api.output.wire_specs("output"), response.outputs),
        ):
            for spec in specs:
                target.add(
                    name=spec["name"],
                    datatype=spec["datatype"] or "FP32",
                    shape=spec["shape"] or [-1],
                )
        return response

    def config(self, name: str) -> model_config_pb2.ModelConfig:
        """A Triton ModelConfig synthesised from the API's io specs (no batching at this level)."""
        metadata = self.metadata(name)
        config = model_config_pb2.ModelConfig(
            name=name, platform=_PLATFORM, backend="python", max_batch_size=0
        )
        for tensor in metadata.inputs:
            config.input.add(
                name=tensor.name, data_type=_data_type(tensor.datatype), dims=tensor.shape
            )
        for tensor in metadata.outputs:
            config.output.add(
                name=tensor.name, data_type=_data_type(tensor.datatype), dims=tensor.shape
            )
        return config

    def statistics(self, name: str) -> pb.ModelStatistics:
        """Cumulative request counts and durations of one API."""
        return self._stats[name].stats

    def close(self) -> None:
        """Stop the API thread pool."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _parameters(params: Any) -> dict[str, Any]:
    """A protobuf InferParameter map as plain values."""
    out: dict[str, Any] = {}
    for key, param in params.items():
        which = param.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(param, which)
    return out


def _string_param(params: Any, key: str) -> str | None:
    if key in params and params[key].WhichOneof("parameter_choice") == "string_param":
        return str(params[key].string_param)
    return None


async def _call_hook(hook: Any, *args: Any) -> None:
    """Call a lifecycle hook with the arguments it declares (none, or the Context)."""
    try:
        wanted = len(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        wanted = len(args)
    call_args = args[:wanted]
    if inspect.iscoroutinefunction(hook):
        await hook(*call_args)
        return
    result = await asyncio.to_thread(hook, *call_args)
    if inspect.isawaitable(result):
        await result


def _data_type(datatype: str) -> int:
    return model_config_pb2.DataType.Value(
        "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"
    )
