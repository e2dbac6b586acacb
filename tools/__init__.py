"""Inspectors beside the package: one-off questions asked of a dataset, a run or a library.

Run each from the repository root as ``python -m tools.<name> --help``; ``tools/README.md``
says what each answers. They import sing_ray's public functions only and start no Ray.
"""
