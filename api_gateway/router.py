"""Routing policy (pure, no grpc): power of two choices on in-flight requests, with a cap.

Algorithm, per request for model `name` and `version` (empty = any version):
1. Candidates are the workers that are SERVING, host that model and version, are not in
   `exclude` (the replicas this request already failed on), are not ejected as outliers
   (`api_gateway/outlier.py`) and have fewer than `max_inflight_per_worker` requests in
   flight. If only ejected workers are left, they are candidates after all (Envoy's panic
   mode: an ejected replica is a better bet than no answer).
2. One candidate: take it. Two or more: draw two distinct ones at random and take the one with
   fewer requests in flight (ties: the first drawn). This keeps the load spread nearly as well
   as "least loaded" without every gateway herding onto the same replica, and costs O(n) to
   filter plus O(1) to choose.

Failure modes, each a distinct error so clients can react:
- `NotFound`: every worker in the pool has described itself and none hosts the model (or that
  version). A worker that never answered DescribeModels might host it, so then we say
  `Unavailable` instead: during a gateway start or a partition "not found" would be a lie.
- `Unavailable`: some worker hosts it but none is SERVING now (loading, draining, dead), or
  all serving replicas were already tried by this request.
- `ResourceExhausted`: every serving replica is at its in-flight cap (the cluster is
  saturated; the client should back off).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from typing import Protocol, TypeVar

from protos.errors import NotFound, ResourceExhausted, Unavailable

__all__ = ["WorkerView", "choose_worker"]


class WorkerView(Protocol):
    """What the router needs to know about one worker."""

    @property
    def address(self) -> str: ...

    @property
    def serving(self) -> bool: ...

    @property
    def described(self) -> bool: ...

    @property
    def inflight(self) -> int: ...

    @property
    def ejected(self) -> bool: ...

    def hosts(self, name: str, version: str) -> bool: ...


W = TypeVar("W", bound=WorkerView)


def choose_worker(
    workers: Sequence[W],
    name: str,
    version: str,
    *,
    max_inflight_per_worker: int,
    exclude: Collection[str] = (),
    rng: random.Random | None = None,
) -> W:
    """The worker to send one request for `name`/`version` to (see the module doc)."""
    candidates: list[W] = []
    ejected: list[W] = []
    hosting = capped = 0
    for worker in workers:
        if not worker.hosts(name, version):
            continue
        hosting += 1
        if not worker.serving or worker.address in exclude:
            continue
        if worker.inflight >= max_inflight_per_worker:
            capped += 1
            continue
        (ejected if worker.ejected else candidates).append(worker)
    candidates = candidates or ejected
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        first, second = (rng or random).sample(candidates, 2)
        return second if second.inflight < first.inflight else first
    label = f"{name}:{version}" if version else name
    if capped:
        raise ResourceExhausted(
            f"all {capped} serving replicas of model {label} are at their in-flight cap "
            f"({max_inflight_per_worker}); retry later"
        )
    if hosting:
        tried = f" ({len(exclude)} already tried)" if exclude else ""
        raise Unavailable(f"no SERVING worker hosts model {label} right now{tried}")
    if not workers:
        raise Unavailable("the gateway has no workers in its pool")
    if all(worker.described for worker in workers):
        raise NotFound(f"model {label} is not hosted by any worker")
    raise Unavailable(f"model {label} is not known yet: some workers have not described themselves")
