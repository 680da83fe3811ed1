"""`make demo` (``python -m runnerfleet.demo``): save the demo models, run them locally, report.

Uses the store at $RUNNERFLEET_HOME (default ~/runnerfleet). The cluster part of the demo
lives in its own module.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["main", "run_local_demo"]


def run_local_demo() -> dict[str, float]:
    """Save iris_clf, digits_mlp and echo, run each through a local runner; return accuracies."""
    import runnerfleet
    from protos.errors import Internal
    from runnerfleet import demo_models

    accuracy: dict[str, float] = {}
    iris = runnerfleet.models.get(demo_models.save_iris())
    runner = iris.to_runner()
    runner.init_local()
    x, y = demo_models.iris_data()
    predictions = runner.predict.run(x)
    accuracy["iris_clf"] = float((predictions == y).mean())
    print(f"saved {iris.tag} -> {iris.path}")
    print(f"  predict(x[:5]) = {predictions[:5].tolist()}  (true {y[:5].tolist()})")
    print(f"  predict_proba(x[:1]) = {np.round(runner.predict_proba.run(x[:1]), 3).tolist()}")

    digits = runnerfleet.models.get(demo_models.save_digits_torch())
    runner = digits.to_runner()
    runner.init_local()
    dx, dy = demo_models.digits_data()
    labels = runner.run(dx).argmax(dim=1).numpy()  # torch runners answer tensors (BentoML)
    accuracy["digits_mlp"] = float((labels == dy).mean())
    print(f"saved {digits.tag} -> {digits.path}")
    print(f"  run(x[:8]).argmax = {labels[:8].tolist()}  (true {dy[:8].tolist()})")

    echo = runnerfleet.models.get(demo_models.save_echo())
    runner = echo.to_runner()
    runner.init_local()
    payload = np.arange(8, dtype=np.float32).reshape(2, 4)
    if not np.array_equal(runner.run(payload), payload):
        raise Internal(f"{echo.tag} did not return its input")
    print(f"saved {echo.tag} -> {echo.path}  (echo round trip ok)")
    return accuracy


def main(argv: list[str] | None = None) -> int:
    from protos.errors import RunnerFleetError

    try:
        accuracy = run_local_demo()
    except RunnerFleetError as exc:
        print(f"demo failed: {exc.message}", file=sys.stderr)
        return 1
    for name, value in accuracy.items():
        print(f"accuracy {name}: {value:.3f} (local runner, on its training data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
