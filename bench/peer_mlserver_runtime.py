"""MLServer's own scikit-learn runtime, counting batch rows (runs in the MLServer peer venv).

`CountingSKLearnModel` is `mlserver_sklearn.SKLearnModel` unchanged except that every call to
`predict` (one per adaptive batch) observes its row count in MLServer's own metrics registry
(`mlserver.log`), as the histogram `bench_batch_rows`: the harness reads its `_sum` / `_count`
from MLServer's `/metrics` to report the mean batch size, which MLServer does not export.
"""

from __future__ import annotations

import mlserver
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_sklearn import SKLearnModel


class CountingSKLearnModel(SKLearnModel):
    async def load(self) -> bool:
        mlserver.register("bench_batch_rows", "rows per predict call (one per adaptive batch)")
        return await super().load()

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = payload.inputs[0].shape[0] if payload.inputs and payload.inputs[0].shape else 1
        response = await super().predict(payload)
        mlserver.log(bench_batch_rows=rows)
        return response
