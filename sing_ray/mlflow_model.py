"""The MLflow pyfunc flavour of a SING checkpoint, logged as "models from code".

MLflow loads this file instead of unpickling anything: the model's weights
travel as the ``checkpoint`` artifact and load with ``weights_only=True``.
``predict`` takes rows of (instrument, pitch, velocity) and returns waveforms.
"""
from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class SingPyfunc(PythonModel):
    """pyfunc wrapper: DataFrame[instrument (name or id), pitch, velocity] -> list of float32 waveforms."""

    def load_context(self, context):
        from sing_ray.generate import Generator

        self.generator = Generator.from_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input, params=None):
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        wavs = self.generator.generate(
            [r["instrument"] for r in rows], [int(r["pitch"]) for r in rows], [int(r["velocity"]) for r in rows])
        return [w.tolist() for w in wavs]


mlflow.models.set_model(SingPyfunc())
