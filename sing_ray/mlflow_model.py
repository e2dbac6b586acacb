"""The MLflow pyfunc flavour of a SING checkpoint, logged as "models from code".

MLflow loads this file instead of unpickling anything: the model's weights
travel as the ``checkpoint`` artifact and load with ``weights_only=True``.
``predict`` takes rows of (instrument, pitch, velocity[, mix]) and returns waveforms.
"""
from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class SingPyfunc(PythonModel):
    """pyfunc wrapper: DataFrame[instrument, pitch, velocity, optional mix] -> (rows, 64000) float32.

    ``mix`` (``"NAME:WEIGHT,NAME:WEIGHT"``), where a row has one, is that row's timbre mix and
    its ``instrument`` is ignored.
    """

    def load_context(self, context):
        from sing_ray.generate import Generator

        self.generator = Generator.from_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input, params=None):
        from sing_ray.render import parse_mix

        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        timbres = [parse_mix(r["mix"]) if isinstance(r.get("mix"), str) and r["mix"].strip() else r["instrument"]
                   for r in rows]
        return self.generator.generate(timbres, [int(r["pitch"]) for r in rows], [int(r["velocity"]) for r in rows])


mlflow.models.set_model(SingPyfunc())
