"""What integrity at load costs: hash throughput (MB/s) and the added time on a big torch load.

Saves an untrained torch MLP of about ``--mb`` MB into a scratch store, then times, best of
``--repeat``: the check alone (sha256 of every file, streaming), a load without the check,
and a load with it. Run: ``python -m bench.store_integrity --mb 300``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

__all__ = ["main"]


def _best_s(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=300, help="model size in MB (approximate)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rf-integrity-") as home:
        os.environ["RUNNERFLEET_HOME"] = home
        import torch

        import store
        from store.integrity import verify_files

        width = int((args.mb * 1e6 / 4 / 2) ** 0.5)  # two square layers of float32
        module = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.Linear(width, width))
        model = store.save_model("pytorch", "big", module)
        size_bytes = sum(
            os.path.getsize(os.path.join(root, f))
            for root, _d, files in os.walk(model.path)
            for f in files
        )
        skip = store.TrustPolicy(verify_integrity=False)
        check = store.TrustPolicy()
        verify_s = _best_s(lambda: verify_files(model.path, "big"), args.repeat)
        plain_s = _best_s(lambda: store.get(model.tag).load_model(policy=skip), args.repeat)
        checked_s = _best_s(lambda: store.get(model.tag).load_model(policy=check), args.repeat)
        print(
            json.dumps(
                {
                    "model_bytes": size_bytes,
                    "verify_s": round(verify_s, 3),
                    "verify_mb_per_s": round(size_bytes / 1e6 / verify_s, 1),
                    "load_unchecked_s": round(plain_s, 3),
                    "load_checked_s": round(checked_s, 3),
                    "overhead_ratio": round(checked_s / plain_s, 2),
                    "note": "best of repeat; page cache warm after the save",
                }
            )
        )


if __name__ == "__main__":
    main()
