"""A TorchScript runtime for MLServer (runs in the MLServer peer venv; 1.7 ships no torch one).

`TorchScriptModel` loads the TorchScript trace `bench/prepare.py` exported from the stored torch
module (same weights, hash-checked there) and runs it on the CPU under `torch.inference_mode()`,
one call per (adaptive) batch, observing each call's row count as `bench_batch_rows` like
`peer_mlserver_runtime.CountingSKLearnModel`. The output name comes from
`parameters.extra.output_name`.
"""

from __future__ import annotations

import mlserver
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class TorchScriptModel(MLModel):
    async def load(self) -> bool:
        import torch

        mlserver.register("bench_batch_rows", "rows per predict call (one per adaptive batch)")
        params = self.settings.parameters
        self._torch = torch
        self._module = torch.jit.load(str(params.uri), map_location="cpu").eval()
        self._output = (params.extra or {}).get("output_name", "output__0")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = np.ascontiguousarray(NumpyCodec.decode_input(payload.inputs[0]))
        with self._torch.inference_mode():
            y = self._module(self._torch.from_numpy(x)).numpy()
        mlserver.log(bench_batch_rows=int(x.shape[0]))
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output(self._output, y)]
        )
