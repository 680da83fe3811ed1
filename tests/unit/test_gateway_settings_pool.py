"""Gateway settings, statistics merging and DNS membership (no worker processes needed)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from api_gateway import statistics
from api_gateway.pool import HealthCheckStreak, WorkerPool
from api_gateway.settings import GatewaySettings, parse_address
from protos import grpc_service_pb2 as pb
from protos.errors import InvalidArgument


def test_flags_win_over_env_and_defaults() -> None:
    env = {
        "RUNNERFLEET_MAX_INFLIGHT": "7",
        "RUNNERFLEET_PORT": "9001",
        "RUNNERFLEET_WORKERS": "a:1, b:2",
    }
    settings = GatewaySettings.load({"port": 1234, "metrics_port": None}, env)
    assert settings.port == 1234
    assert settings.max_inflight == 7
    assert settings.metrics_port == 8002
    assert settings.workers == ("a:1", "b:2")
    assert settings.max_message_bytes == 256 * 1024 * 1024


def test_token_never_in_repr() -> None:
    settings = GatewaySettings.load({"workers": "a:1"}, {"RUNNERFLEET_AUTH_TOKEN": "hunter2"})
    assert settings.auth_token == "hunter2"
    assert "hunter2" not in repr(settings)
    settings = GatewaySettings.load({"workers": "a:1"}, {"RUNNERFLEET_AUTH_TOKEN_FILE": "/t"})
    assert settings.auth_token_file == "/t"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({}, "exactly one"),
        ({"workers": "a:1", "workers_dns": "svc:1"}, "exactly one"),
        ({"workers": "nohost"}, "HOST:PORT"),
        ({"workers": "a:99999"}, "HOST:PORT"),
        ({"workers": "a:1", "tls_cert": "c"}, "both"),
        ({"workers": "a:1", "tls_client_ca": "ca"}, "mTLS"),
        ({"workers": "a:1", "max_inflight": 0}, "at least 1"),
        ({"workers": "a:1", "health_check_unhealthy_threshold": 0}, "thresholds"),
        ({"workers": "a:1", "health_check_healthy_threshold": 0}, "thresholds"),
    ],
)
def test_bad_settings_are_refused(flags, message) -> None:
    with pytest.raises(InvalidArgument, match=message):
        GatewaySettings.load(flags, {})


def test_health_check_thresholds_default_and_come_from_env() -> None:
    defaults = GatewaySettings.load({"workers": "a:1"}, {})
    assert (defaults.health_check_unhealthy_threshold, defaults.health_check_healthy_threshold) == (
        2,
        1,
    )
    env = {
        "RUNNERFLEET_HEALTH_CHECK_UNHEALTHY_THRESHOLD": "3",
        "RUNNERFLEET_HEALTH_CHECK_HEALTHY_THRESHOLD": "2",
    }
    settings = GatewaySettings.load({"workers": "a:1"}, env)
    assert (settings.health_check_unhealthy_threshold, settings.health_check_healthy_threshold) == (
        3,
        2,
    )


def test_one_late_health_check_does_not_take_a_worker_out() -> None:
    streak = HealthCheckStreak(unhealthy_threshold=3, healthy_threshold=2)
    # isolated misses, each followed by an answer, never reach 3 in a row
    for answered in (False, True, False, False, True, False):
        assert streak.record(answered) is True
    assert streak.record(False) is True  # 1 in a row (after the reset above: 2)
    assert streak.record(False) is False  # 3 in a row: out
    assert streak.record(True) is False  # 1 answer of the 2 needed
    assert streak.record(False) is False  # a miss resets the answers
    assert streak.record(True) is False
    assert streak.record(True) is True  # 2 answers in a row: back


def test_health_check_thresholds_of_one_follow_each_result() -> None:
    streak = HealthCheckStreak(unhealthy_threshold=1, healthy_threshold=1)
    assert [streak.record(a) for a in (True, False, True, False, False, True)] == [
        True, False, True, False, False, True,
    ]  # fmt: skip


def test_parse_address_handles_ipv6() -> None:
    assert parse_address("[::1]:8001") == ("::1", 8001)
    assert parse_address("worker-0.svc:8101") == ("worker-0.svc", 8101)


def _stats(name: str, version: str, success: int, rows: int, batch: int) -> pb.ModelStatistics:
    stats = pb.ModelStatistics(name=name, version=version, inference_count=rows, execution_count=1)
    stats.last_inference = success
    stats.inference_stats.success.count = success
    stats.inference_stats.success.ns = success * 1000
    stats.batch_stats.add(batch_size=batch).compute_infer.count = 1
    return stats


def test_statistics_sum_per_model_and_version() -> None:
    replies = [
        pb.ModelStatisticsResponse(
            model_stats=[_stats("m", "1", 3, 6, 2), _stats("n", "1", 1, 1, 1)]
        ),
        pb.ModelStatisticsResponse(model_stats=[_stats("m", "1", 5, 10, 2)]),
    ]
    merged = statistics.merge(replies)
    by_name = {s.name: s for s in merged.model_stats}
    m = by_name["m"]
    assert m.inference_stats.success.count == 8
    assert m.inference_stats.success.ns == 8000
    assert m.inference_count == 16
    assert m.execution_count == 2
    assert m.last_inference == 5
    assert [(b.batch_size, b.compute_infer.count) for b in m.batch_stats] == [(2, 2)]
    assert by_name["n"].inference_count == 1


def test_dns_membership_follows_the_answers(monkeypatch) -> None:
    answers = {"ips": ["10.255.0.1", "10.255.0.2"]}

    async def fake_getaddrinfo(self, host, port, **kwargs):
        assert host == "workers.svc"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers["ips"]]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fake_getaddrinfo)
    settings = GatewaySettings(
        workers_dns="workers.svc:8101", dns_refresh_s=0.02, startup_discovery_timeout_s=0.05
    )

    async def scenario() -> list[list[str]]:
        changed = asyncio.Event()
        pool = WorkerPool(settings, on_change=lambda p: changed.set())
        seen = []
        await pool.start()
        seen.append(sorted(w.address for w in pool.workers))
        answers["ips"] = ["10.255.0.2", "10.255.0.3"]
        for _ in range(100):
            changed.clear()
            await asyncio.wait_for(changed.wait(), 5)
            if sorted(w.address for w in pool.workers) == ["10.255.0.2:8101", "10.255.0.3:8101"]:
                break
        seen.append(sorted(w.address for w in pool.workers))
        assert not any(w.serving for w in pool.workers)  # unreachable: never routed to
        await pool.close()
        seen.append([w.address for w in pool.workers])
        return seen

    first, second, closed = asyncio.run(scenario())
    assert first == ["10.255.0.1:8101", "10.255.0.2:8101"]
    assert second == ["10.255.0.2:8101", "10.255.0.3:8101"]
    assert closed == []
