"""SING's three training phases on Ray Train, tracked in MLflow.

- :func:`run_pipeline`: the library entry point (driver): checks, MLflow runs, one
  ``TorchTrainer`` per phase, resume, model registration. Returns a :class:`PipelineResult`.
- :mod:`.loops`: the Ray Train worker loops ``train_loop_autoencoder``, ``_sequence``, ``_finetune``.
- :mod:`.steps`: the plain ``*_step`` functions (pure torch), shared with the benchmark.
- :mod:`.embeddings`: phase 2's embedding precompute (Ray Data actor pool, Parquet).
- :mod:`.bench`: Ray Train against a plain PyTorch loop, and GFLOP/s against the GEMM peak.

Importing this package imports neither Ray nor MLflow; running does.
"""
from .pipeline import NonFiniteLossError, PhaseFailedError, PhaseResult, PipelineResult, run_pipeline

__all__ = ["NonFiniteLossError", "PhaseFailedError", "PhaseResult", "PipelineResult", "run_pipeline"]
