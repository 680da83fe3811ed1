"""Synthesise ModelMetadata, Triton's ModelConfig and ModelStatistics for hosted models."""

from __future__ import annotations

from typing import Any

from protos import grpc_service_pb2 as pb
from protos import model_config_pb2 as mc
from protos.server_info import SERVER_NAME, server_version
from protos.shm import SharedMemoryRegistry, shm_available
from runner_worker.hosting import HostedModel, ModelHost
from runner_worker.runner import MethodInfo, ModelRunner
from runner_worker.settings import WorkerSettings
from runner_worker.validate import spec_datatype

__all__ = [
    "server_metadata",
    "model_metadata",
    "model_config",
    "config_of",
    "config_max_batch_size",
    "config_data_type",
    "statistics_of",
    "statistics_works",
]


def config_data_type(datatype: str) -> str:
    """Wire datatype -> ModelConfig DataType name (``BYTES`` is Triton's ``TYPE_STRING``)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def config_max_batch_size(info: MethodInfo, max_batch_size: int) -> int:
    """Triton's max_batch_size: > 0 only when the method batches along dim 0 in and out."""
    return max_batch_size if info.batchable and info.batch_dim == (0, 0) else 0


def model_metadata(runner: ModelRunner, versions: list[str]) -> pb.ModelMetadataResponse:
    """Inputs and outputs of the default method, full shapes (-1 = any size)."""
    info = runner.methods[runner.default_method]
    tm = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=runner.name,
        versions=versions,
        platform=runner.platform,
        inputs=[
            tm(name=s.name, datatype=spec_datatype(s.dtype), shape=list(s.shape))
            for s in info.input_spec or ()
        ],
        outputs=[
            tm(name=s.name, datatype=spec_datatype(s.dtype), shape=list(s.shape))
            for s in info.output_spec or ()
        ],
    )


def model_config(
    runner: ModelRunner,
    *,
    max_batch_size: int,
    max_queue_size: int,
    max_latency_ms: float,
    device: str,
) -> mc.ModelConfig:
    """The default method's config; dims exclude the batch dim when max_batch_size > 0."""
    method = runner.default_method
    info = runner.methods[method]
    mbs = config_max_batch_size(info, max_batch_size)
    skip = 1 if mbs > 0 else 0
    config = mc.ModelConfig(
        name=runner.name,
        platform=runner.platform,
        backend=runner.platform,
        max_batch_size=mbs,
        input=[
            mc.ModelInput(
                name=s.name,
                data_type=config_data_type(spec_datatype(s.dtype)),
                dims=list(s.shape[skip:]),
            )
            for s in info.input_spec or ()
        ],
        output=[
            mc.ModelOutput(
                name=s.name,
                data_type=config_data_type(spec_datatype(s.dtype)),
                dims=list(s.shape[skip:]),
            )
            for s in info.output_spec or ()
        ],
        instance_group=[_instance_group(runner.name, device)],
        metric_tags={"method": method, "version": runner.version},
    )
    if info.batchable:
        config.dynamic_batching.CopyFrom(
            mc.ModelDynamicBatching(
                max_queue_delay_microseconds=int(max_latency_ms * 1000),
                default_queue_policy=mc.ModelQueuePolicy(max_queue_size=max_queue_size),
            )
        )
    return config


def _instance_group(name: str, device: str) -> mc.ModelInstanceGroup:
    if device.startswith("cuda:"):
        return mc.ModelInstanceGroup(
            name=f"{name}_0",
            count=1,
            kind=mc.ModelInstanceGroup.KIND_GPU,
            gpus=[int(device.split(":", 1)[1])],
        )
    return mc.ModelInstanceGroup(name=f"{name}_0", count=1, kind=mc.ModelInstanceGroup.KIND_CPU)


def config_of(hosted: HostedModel, settings: WorkerSettings) -> mc.ModelConfig:
    """The synthesised ModelConfig of a hosted model's default method (its batcher's knobs)."""
    policy = hosted.batchers[hosted.runner.default_method].policy
    return model_config(
        hosted.runner,
        max_batch_size=policy.max_batch_size,
        max_queue_size=policy.max_queue_size,
        max_latency_ms=round(policy.max_latency_s * 1000.0, 6),
        device=settings.device,
    )


def statistics_works(host: ModelHost) -> bool:
    """True when perf_analyzer can read our statistics: every hosted version is an integer.

    perf_analyzer parses versions with ``std::stoll`` and looks the entry up again by the
    integer's decimal text, so a version like ``"3jx7..."`` makes it abort.
    """
    models = host.hosted()
    return bool(models) and all(
        m.version.isdigit() and str(int(m.version)) == m.version for m in models
    )


def server_metadata(host: ModelHost, shm: SharedMemoryRegistry | None) -> pb.ServerMetadataResponse:
    """Name, version and the extensions that work now (gRPC and HTTP answer the same)."""
    extensions = ["model_configuration", "model_repository"]
    if statistics_works(host):
        extensions.append("statistics")
    if shm is not None and shm_available():
        extensions.append("system_shared_memory")
    extensions += ["logging", "trace"]  # protos/runtime_settings.py
    return pb.ServerMetadataResponse(
        name=SERVER_NAME, version=server_version(), extensions=extensions
    )


def statistics_of(hosted: HostedModel) -> pb.ModelStatistics:
    """A hosted model's cumulative statistics as Triton's message."""
    s = hosted.stats

    def dur(d: Any) -> pb.StatisticDuration:
        return pb.StatisticDuration(count=d.count, ns=d.ns)

    return pb.ModelStatistics(
        name=s.name,
        version=s.version,
        last_inference=s.last_inference_ms,
        inference_count=s.inference_count,
        execution_count=s.execution_count,
        inference_stats=pb.InferStatistics(
            success=dur(s.success),
            fail=dur(s.fail),
            queue=dur(s.queue),
            compute_input=dur(s.compute_input),
            compute_infer=dur(s.compute_infer),
            compute_output=dur(s.compute_output),
        ),
        batch_stats=[
            pb.InferBatchStatistics(
                batch_size=size,
                compute_input=dur(b.compute_input),
                compute_infer=dur(b.compute_infer),
                compute_output=dur(b.compute_output),
            )
            for size, b in sorted(s.batch_stats.items())
        ],
    )
