"""Sum ModelStatistics answers from several replicas into one per model and version."""

from __future__ import annotations

from collections.abc import Iterable

from protos import grpc_service_pb2 as pb

__all__ = ["merge"]

_DURATIONS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
_BATCH_DURATIONS = ("compute_input", "compute_infer", "compute_output")


def _add(total: pb.StatisticDuration, part: pb.StatisticDuration) -> None:
    total.count += part.count
    total.ns += part.ns


def merge(replies: Iterable[pb.ModelStatisticsResponse]) -> pb.ModelStatisticsResponse:
    """One entry per (name, version): counts and durations summed, last_inference the latest."""
    merged: dict[tuple[str, str], pb.ModelStatistics] = {}
    batches: dict[tuple[str, str, int], pb.InferBatchStatistics] = {}
    for reply in replies:
        for stats in reply.model_stats:
            key = (stats.name, stats.version)
            total = merged.get(key)
            if total is None:
                total = merged[key] = pb.ModelStatistics(name=stats.name, version=stats.version)
            total.last_inference = max(total.last_inference, stats.last_inference)
            total.inference_count += stats.inference_count
            total.execution_count += stats.execution_count
            for field in _DURATIONS:
                _add(getattr(total.inference_stats, field), getattr(stats.inference_stats, field))
            for batch in stats.batch_stats:
                slot = batches.get((*key, batch.batch_size))
                if slot is None:
                    slot = batches[(*key, batch.batch_size)] = total.batch_stats.add(
                        batch_size=batch.batch_size
                    )
                for field in _BATCH_DURATIONS:
                    _add(getattr(slot, field), getattr(batch, field))
    return pb.ModelStatisticsResponse(model_stats=[merged[key] for key in sorted(merged)])
