"""Triton kernels of gpupage (importable without a GPU; see the README).

Every module lists the specialisations it can launch in ``AOT_SPECS`` for
``scripts/compile_kernels.py``."""
