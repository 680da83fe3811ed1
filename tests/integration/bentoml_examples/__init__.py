"""BentoML 1.x examples with ``runnerfleet`` in place of ``bentoml``: service files, training."""
