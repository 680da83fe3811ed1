"""The gateway's one frozen settings object: CLI flags, then `RUNNERFLEET_*` env, then defaults.

Loaded by `protos.settings_loader` (one boolean rule, one env prefix, one read of os.environ).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from api_gateway.hedging import HedgePolicy
from api_gateway.outlier import OutlierPolicy
from protos.errors import InvalidArgument
from protos.event_loop import check_event_loop
from protos.settings_loader import ENV_PREFIX, load_values, process_environ
from protos.trust_settings import TRUST_PARSERS, TrustSettings

__all__ = ["GatewaySettings", "ENV_PREFIX", "parse_address"]

_MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class GatewaySettings(TrustSettings):
    """Everything the gateway process reads from its flags and environment.

    Server TLS, client tokens/identities and /metrics access come from `TrustSettings`;
    the `worker_tls_*` and `cluster_*token*` fields are what the gateway presents to workers.
    """

    host: str = "127.0.0.1"  # deploy/ passes 0.0.0.0 where containers need it
    port: int = 8001
    event_loop: str = "auto"  # protos/event_loop.py: uvloop where installed
    metrics_port: int = 8002
    http_port: int | None = None  # HTTP/REST v2; None: 8000, or any free port when port is 0
    port_file: str | None = None
    workers: tuple[str, ...] = ()
    workers_dns: str | None = None
    dns_refresh_s: float = 2.0
    describe_refresh_s: float = 10.0
    service: str | None = None
    max_inflight: int = 2048
    max_inflight_per_worker: int = 512
    max_forward_batch_items: int = 256
    # forward calls in flight per worker (coalescer). 1 by measurement: with 4, the iris model
    # through the gateway fell to ~0.5x of af2355c at c=16 and c=64 (the coalescer sends more,
    # smaller calls, so the worker batches less); a hung worker is handled by the health check
    max_forward_calls_per_worker: int = 1
    max_attempts: int = 3
    # liveness of a worker: an active health Check with a deadline, and HTTP/2 keepalive
    health_check_interval_s: float = 0.25
    health_check_timeout_s: float = 0.75
    # late health checks in a row that take a worker out, answered ones that bring it back
    health_check_unhealthy_threshold: int = 2
    health_check_healthy_threshold: int = 1
    keepalive_time_s: float = 1.0
    keepalive_timeout_s: float = 1.0
    # a request that finds no routable replica waits for one, up to its deadline and this long
    route_wait_s: float = 10.0
    # outlier ejection (api_gateway/outlier.py)
    outlier_consecutive_faults: int = 3
    outlier_consecutive_slow: int = 3
    outlier_latency_multiple: float = 10.0
    outlier_latency_floor_s: float = 0.05
    outlier_base_ejection_s: float = 1.0
    outlier_max_ejection_s: float = 30.0
    outlier_max_ejection_percent: float = 50.0
    # hedging (api_gateway/hedging.py)
    hedge: bool = True
    hedge_quantile: float = 0.95
    hedge_min_delay_s: float = 0.005
    hedge_budget_ratio: float = 0.1
    hedge_burst: float = 10.0
    max_message_bytes: int = 256 * _MIB
    # forwards to workers on this host over the Unix socket they offer (else gRPC)
    forward_local_link: bool = True
    # requests this big go to workers on this host through shared memory (0: never)
    forward_shm_min_bytes: int = 1 * _MIB
    forward_shm_max_bytes: int = 512 * _MIB  # slots live at once, per worker
    startup_discovery_timeout_s: float = 5.0
    stop_grace_s: float = 10.0
    statistics_timeout_s: float = 5.0  # ModelStatistics fan-out to each worker
    describe_timeout_s: float = 5.0  # DescribeModels call to one worker (pool discovery)
    repository_timeout_s: float = 300.0  # RepositoryModelLoad/Unload without a client deadline
    # gateway -> worker: TLS verified against worker_tls_ca (client certificate for mTLS)
    worker_tls_ca: str | None = None
    worker_tls_cert: str | None = None
    worker_tls_key: str | None = None
    worker_tls_server_name: str | None = None  # name the worker certificates carry (pod IPs)
    # bearer tokens presented to workers: inference scope (forwards, describe) and control scope
    cluster_token_file: str | None = None
    cluster_token: str | None = dataclasses.field(default=None, repr=False)
    cluster_control_token_file: str | None = None
    cluster_control_token: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if bool(self.workers) == bool(self.workers_dns):
            raise InvalidArgument("give exactly one of --workers HOST:PORT,... or --workers-dns")
        for address in self.workers:
            parse_address(address)
        if self.workers_dns:
            parse_address(self.workers_dns)
        self.check_trust()
        check_event_loop(self.event_loop)
        if bool(self.worker_tls_cert) != bool(self.worker_tls_key):
            raise InvalidArgument("the worker client certificate needs --worker-tls-cert and key")
        if self.worker_tls_cert and not self.worker_tls_ca:
            raise InvalidArgument("--worker-tls-cert needs --worker-tls-ca (TLS to workers)")
        for name in ("max_inflight", "max_inflight_per_worker", "max_forward_batch_items"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be at least 1")
        if min(self.health_check_unhealthy_threshold, self.health_check_healthy_threshold) < 1:
            raise InvalidArgument("health check thresholds must be at least 1")
        if self.max_forward_calls_per_worker < 1 or self.max_attempts < 1:
            raise InvalidArgument("max_forward_calls_per_worker and max_attempts must be >= 1")
        for name in (
            "health_check_interval_s", "health_check_timeout_s", "keepalive_time_s",
            "keepalive_timeout_s", "outlier_base_ejection_s", "outlier_max_ejection_s",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be > 0")
        if self.forward_shm_min_bytes < 0 or self.forward_shm_max_bytes < 0:
            raise InvalidArgument("forward_shm_min_bytes and forward_shm_max_bytes must be >= 0")
        if not 0 <= self.outlier_max_ejection_percent <= 100:
            raise InvalidArgument("outlier_max_ejection_percent must be within 0..100")
        if not 0 < self.hedge_quantile < 1 or self.hedge_budget_ratio < 0:
            raise InvalidArgument("hedge_quantile must be within (0, 1), hedge_budget_ratio >= 0")

    def outlier_policy(self) -> OutlierPolicy:
        """The outlier ejection knobs as the policy object."""
        return OutlierPolicy(
            consecutive_faults=self.outlier_consecutive_faults,
            consecutive_slow=self.outlier_consecutive_slow,
            latency_multiple=self.outlier_latency_multiple,
            latency_floor_s=self.outlier_latency_floor_s,
            base_ejection_s=self.outlier_base_ejection_s,
            max_ejection_s=self.outlier_max_ejection_s,
            max_ejection_percent=self.outlier_max_ejection_percent,
        )

    def hedge_policy(self) -> HedgePolicy:
        """The hedging knobs as the policy object."""
        return HedgePolicy(
            enabled=self.hedge,
            quantile=self.hedge_quantile,
            min_delay_s=self.hedge_min_delay_s,
            budget_ratio=self.hedge_budget_ratio,
            burst=self.hedge_burst,
        )

    @classmethod
    def load(
        cls, flags: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> GatewaySettings:
        """Build settings: a flag that is not None, else `RUNNERFLEET_<FIELD>`, else the default."""
        env = process_environ() if environ is None else environ
        return cls(**load_values(cls, flags, env, _PARSERS))


def _parse_workers(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(item.strip() for item in items if item.strip())


_PARSERS: dict[str, Any] = {"workers": _parse_workers, "http_port": int, **TRUST_PARSERS}


def parse_address(address: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 as `[::1]:PORT`) and check the port."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"bad worker address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)
