"""BentoML 1.x quickstart ``service.py`` with ``runnerfleet`` in place of ``bentoml``."""

import numpy as np

import runnerfleet
from runnerfleet.io import NumpyNdarray

iris_clf_runner = runnerfleet.sklearn.get("iris_clf:latest").to_runner()

svc = runnerfleet.Service("iris_classifier", runners=[iris_clf_runner])


@svc.api(input=NumpyNdarray(), output=NumpyNdarray())
def classify(input_series: np.ndarray) -> np.ndarray:
    result = iris_clf_runner.predict.run(input_series)
    return result
