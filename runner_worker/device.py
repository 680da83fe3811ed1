"""Process pinning: GPU visibility, CPU affinity and thread counts, from the settings.

``pin_process`` runs before numpy or torch is imported (environment variables are read by
those libraries at import); ``configure_runtime`` runs again after models load, for libraries
imported since (torch threads, BLAS pools via threadpoolctl, the CUDA device).
"""

from __future__ import annotations

import os
import sys

from protos.errors import FailedPrecondition
from runner_worker.settings import WorkerSettings

__all__ = ["pin_process", "configure_runtime", "intra_op_threads", "THREAD_ENV_VARS"]

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def intra_op_threads(settings: WorkerSettings) -> int | None:
    """Threads for torch and BLAS/OpenMP: ``--threads``, or by default the cores this process
    may use (``--cpus``, its affinity); None for ``--threads 0`` (the libraries' own default,
    which counts every core of the machine, pinned or not)."""
    if settings.threads is not None:
        return settings.threads or None
    if settings.cpus is not None:
        cores = len(settings.cpus)
    elif hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(cores, 1)


def pin_process(settings: WorkerSettings) -> None:
    """Hide GPUs for ``--device cpu``, export thread counts and the OpenMP wait policy, set the
    CPU affinity.

    ``--device cuda:N`` leaves an inherited ``CUDA_VISIBLE_DEVICES`` alone: N indexes the
    devices it makes visible, as torch counts them. An exported ``OMP_WAIT_POLICY`` wins over
    the setting.
    """
    if settings.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    threads = intra_op_threads(settings)
    if threads is not None:
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(threads)
    if settings.omp_wait_policy != "default":
        os.environ.setdefault("OMP_WAIT_POLICY", settings.omp_wait_policy)
    if settings.cpus is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, settings.cpus)
        except OSError as exc:
            raise FailedPrecondition(f"cannot pin to CPUs {list(settings.cpus)}: {exc}") from exc


def configure_runtime(settings: WorkerSettings) -> None:
    """Apply thread counts and the CUDA device to libraries already imported."""
    threads = intra_op_threads(settings)
    if threads is not None:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)
        except ImportError:
            pass
    if "torch" not in sys.modules and settings.cuda_index is None:
        return
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    index = settings.cuda_index
    if index is not None:
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
            raise FailedPrecondition(
                f"--device {settings.device} requested but {visible} CUDA device(s) are "
                "visible (check CUDA_VISIBLE_DEVICES and the driver)"
            )
        torch.cuda.set_device(index)
