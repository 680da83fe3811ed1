"""The routing policy on its own: candidates, power of two choices, caps and failure modes."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_gateway.router import choose_worker
from protos.errors import NotFound, ResourceExhausted, Unavailable


@dataclasses.dataclass
class FakeWorker:
    address: str
    serving: bool = True
    described: bool = True
    inflight: int = 0
    ejected: bool = False
    models: frozenset[tuple[str, str]] = frozenset({("iris", "v1")})

    def hosts(self, name: str, version: str) -> bool:
        if not version:
            return any(n == name for n, _ in self.models)
        return (name, version) in self.models


def test_single_candidate_is_taken() -> None:
    workers = [FakeWorker("a"), FakeWorker("b", models=frozenset({("other", "v1")}))]
    for _ in range(20):
        assert choose_worker(workers, "iris", "", max_inflight_per_worker=10).address == "a"


def test_picks_less_loaded_of_two() -> None:
    workers = [FakeWorker("a", inflight=5), FakeWorker("b", inflight=1)]
    for seed in range(20):
        chosen = choose_worker(
            workers, "iris", "v1", max_inflight_per_worker=10, rng=random.Random(seed)
        )
        assert chosen.address == "b"


def test_version_must_match_when_given() -> None:
    workers = [FakeWorker("a"), FakeWorker("b", models=frozenset({("iris", "v2")}))]
    assert choose_worker(workers, "iris", "v2", max_inflight_per_worker=10).address == "b"
    with pytest.raises(NotFound, match="iris:v3"):
        choose_worker(workers, "iris", "v3", max_inflight_per_worker=10)


def test_not_serving_and_excluded_workers_are_skipped() -> None:
    workers = [FakeWorker("a", serving=False), FakeWorker("b"), FakeWorker("c")]
    chosen = choose_worker(workers, "iris", "", max_inflight_per_worker=10, exclude={"b"})
    assert chosen.address == "c"
    with pytest.raises(Unavailable, match="already tried"):
        choose_worker(workers, "iris", "", max_inflight_per_worker=10, exclude={"b", "c"})


def test_unknown_model_is_not_found_only_when_all_described() -> None:
    workers = [FakeWorker("a"), FakeWorker("b", described=False, models=frozenset())]
    with pytest.raises(Unavailable, match="not known yet"):
        choose_worker(workers, "nope", "", max_inflight_per_worker=10)
    workers[1].described = True
    with pytest.raises(NotFound, match="not hosted"):
        choose_worker(workers, "nope", "", max_inflight_per_worker=10)


def test_empty_pool_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="no workers"):
        choose_worker([], "iris", "", max_inflight_per_worker=10)


def test_all_capped_is_resource_exhausted() -> None:
    workers = [FakeWorker("a", inflight=3), FakeWorker("b", inflight=4)]
    with pytest.raises(ResourceExhausted, match="in-flight cap"):
        choose_worker(workers, "iris", "", max_inflight_per_worker=3)


def test_load_spreads_across_replicas() -> None:
    workers = [FakeWorker(str(i)) for i in range(4)]
    rng = random.Random(0)
    for _ in range(400):
        chosen = choose_worker(workers, "iris", "", max_inflight_per_worker=1000, rng=rng)
        chosen.inflight += 1
    loads = sorted(w.inflight for w in workers)
    assert loads[-1] - loads[0] <= 2  # power of two choices keeps the spread tight


worker_lists = st.lists(
    st.builds(
        FakeWorker,
        address=st.text("abcdef", min_size=1, max_size=3),
        serving=st.booleans(),
        described=st.booleans(),
        inflight=st.integers(0, 10),
        models=st.frozensets(
            st.tuples(st.sampled_from(["iris", "mlp"]), st.sampled_from(["v1", "v2"]))
        ),
    ),
    max_size=6,
    unique_by=lambda w: w.address,
)


@given(worker_lists, st.sampled_from(["", "v1", "v2"]), st.integers(1, 10), st.integers(0, 2**32))
def test_choice_always_obeys_the_rules(workers, version, cap, seed) -> None:
    try:
        chosen = choose_worker(
            workers, "iris", version, max_inflight_per_worker=cap, rng=random.Random(seed)
        )
    except ResourceExhausted:
        assert any(w.serving and w.hosts("iris", version) and w.inflight >= cap for w in workers)
        assert not any(w.serving and w.hosts("iris", version) and w.inflight < cap for w in workers)
    except NotFound:
        assert workers and all(w.described for w in workers)
        assert not any(w.hosts("iris", version) for w in workers)
    except Unavailable:
        assert not any(w.serving and w.hosts("iris", version) for w in workers)
    else:
        assert chosen.serving and chosen.hosts("iris", version) and chosen.inflight < cap
        eligible = [
            w for w in workers if w.serving and w.hosts("iris", version) and w.inflight < cap
        ]
        # never the most loaded when a strictly less loaded one exists and there are only two
        if len(eligible) == 2:
            assert chosen.inflight == min(w.inflight for w in eligible)
