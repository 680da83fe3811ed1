"""The worker's one frozen settings object, from CLI flags and ``RUNNERFLEET_*`` env vars.

Loaded by ``protos.settings_loader`` (one boolean rule, one env prefix, one read of
``os.environ`` per process). Precedence: a flag given on the command line, then
``RUNNERFLEET_<FIELD>`` (e.g. ``RUNNERFLEET_MAX_MESSAGE_BYTES``; the store root is
``RUNNERFLEET_HOME``), then the default below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from protos.errors import InvalidArgument
from protos.event_loop import check_event_loop
from protos.settings_loader import ENV_PREFIX, load_values, process_environ
from protos.settings_loader import store_root as default_store_root
from protos.trust_settings import TRUST_PARSERS, TrustSettings
from store.policy import parse_key_paths

__all__ = [
    "OMP_WAIT_POLICIES",
    "WorkerSettings",
    "load_settings",
    "parse_cpus",
    "parse_models",
    "ENV_PREFIX",
]

MIB = 1024 * 1024
OMP_WAIT_POLICIES = ("PASSIVE", "ACTIVE", "default")


@dataclasses.dataclass(frozen=True)
class WorkerSettings(TrustSettings):
    """Everything a worker process needs to know, fixed at start (TLS, tokens: TrustSettings)."""

    models: tuple[str, ...] = ()
    service: str | None = None  # module:attr whose runners this worker hosts
    runners: tuple[str, ...] = ()  # only these runners of the service (empty = all)
    device: str = "cpu"
    cpus: tuple[int, ...] | None = None
    # intra-op threads of torch and BLAS/OpenMP: None = auto (the cores this process may use;
    # docs/ARCHITECTURE.md, "Worker threads"), 0 = the libraries' own default (all cores)
    threads: int | None = None
    # OpenMP's idle threads: PASSIVE sleeps, ACTIVE spins (stealing the event loop's core),
    # "default" leaves OMP_WAIT_POLICY as inherited; an exported OMP_WAIT_POLICY always wins
    omp_wait_policy: str = "PASSIVE"
    event_loop: str = "auto"  # protos/event_loop.py: uvloop where installed
    host: str = "127.0.0.1"  # deploy/ passes 0.0.0.0 where containers need it
    port: int = 8101
    metrics_port: int = 8102
    http_port: int | None = None  # HTTP/REST v2; None: 8100, or any free port when port is 0
    port_file: str | None = None
    max_batch_size: int = 64
    max_latency_ms: float = 1000.0
    max_queue_size: int = 1024
    max_inflight_batches: int = 1
    max_message_bytes: int = 256 * MIB
    # offer gateways on this host ModelInfer over a Unix socket (runner_worker/local_server.py);
    # only without TLS and credentials
    local_link: bool = True
    worker_id: str = ""
    drain_timeout_s: float = 30.0
    stop_grace_s: float = 5.0  # gRPC server stop grace after the drain
    warmup: bool = True
    store_root: str = dataclasses.field(default_factory=lambda: default_store_root({}))
    # store trust (docs/SECURITY.md): hash files before unpickling; require signed manifests
    verify_integrity: bool = True
    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.check_trust()
        check_event_loop(self.event_loop)
        if self.device != "cpu" and not _is_cuda_device(self.device):
            raise InvalidArgument(f"--device must be 'cpu' or 'cuda:N', got {self.device!r}")
        for name in ("max_batch_size", "max_queue_size", "max_inflight_batches"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_latency_ms <= 0:
            raise InvalidArgument(f"max_latency_ms must be > 0, got {self.max_latency_ms}")
        if self.max_message_bytes < 1024:
            raise InvalidArgument(f"max_message_bytes too small: {self.max_message_bytes}")
        if self.threads is not None and self.threads < 0:
            raise InvalidArgument(
                f"--threads must be >= 0 (0 = library default), got {self.threads}"
            )
        if self.omp_wait_policy not in OMP_WAIT_POLICIES:
            raise InvalidArgument(
                f"omp_wait_policy must be one of {', '.join(OMP_WAIT_POLICIES)}, "
                f"got {self.omp_wait_policy!r}"
            )
        if self.require_signature and not self.trusted_keys:
            raise InvalidArgument("require_signature needs trusted_keys (RUNNERFLEET_TRUSTED_KEYS)")

    @property
    def trust_policy(self) -> Any:
        """The store's TrustPolicy for this worker's loads."""
        from store.policy import TrustPolicy

        return TrustPolicy(
            verify_integrity=self.verify_integrity,
            require_signature=self.require_signature,
            trusted_keys=self.trusted_keys,
        )

    @property
    def max_latency_s(self) -> float:
        """The end-to-end latency budget in seconds."""
        return self.max_latency_ms / 1000.0

    @property
    def cuda_index(self) -> int | None:
        """N of ``cuda:N`` (an index among the visible devices), or None on CPU."""
        return int(self.device.split(":", 1)[1]) if _is_cuda_device(self.device) else None


def _is_cuda_device(device: str) -> bool:
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()


def parse_models(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"a:v1,b"`` -> ``("a:v1", "b")``."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(p.strip() for p in parts if p.strip())


def parse_cpus(value: str | None) -> tuple[int, ...] | None:
    """``"0-3,6"`` -> ``(0, 1, 2, 3, 6)``; None or empty -> None."""
    if not value:
        return None
    cpus: set[int] = set()
    try:
        for part in value.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise InvalidArgument(f"--cpus must look like '0-3' or '0,2', got {value!r}") from None
    return tuple(sorted(cpus))


_PARSERS: dict[str, Any] = {
    "models": parse_models,
    "runners": parse_models,
    "cpus": parse_cpus,
    "threads": int,
    "trusted_keys": parse_key_paths,
    **TRUST_PARSERS,
    "http_port": int,
}


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> WorkerSettings:
    """Settings from flags (None = not given), then ``RUNNERFLEET_*`` env, then defaults."""
    env = process_environ() if environ is None else environ
    return WorkerSettings(**load_values(WorkerSettings, flags or {}, env, _PARSERS))
