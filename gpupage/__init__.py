"""gpupage: a batched simulator for the Context Paging Problem.

Heavy modules (torch, numba, triton) load on first use, so ``gpupage --help`` stays fast.
"""

import os
import sys
from importlib import import_module

__version__ = "0.1.0"


def _prefer_workqueue() -> None:
    """numba's ``workqueue`` threading layer, whose idle threads sleep where OpenMP's spin (README,
    "Threads"), unless the user chose one.  Set here, at import, because numba fixes its layer at the first
    parallel call, whichever module makes it; numba imported before us has read the variable already."""
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    numba = sys.modules.get("numba")
    if numba is not None and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]


_prefer_workqueue()

_LAZY = {
    "simulate": "gpupage.core.simulate",
    "SimResult": "gpupage.core.simulate",
    "POLICIES": "gpupage.core.policies",
    "ZipfParams": "gpupage.core.traces",
    "zipf_traces": "gpupage.core.traces",
    "perturb": "gpupage.core.traces",
    "perturbed_pairs": "gpupage.core.traces",
    "retrieval_noise": "gpupage.core.traces",
    "cyclic_traces": "gpupage.core.traces",
    "read_trace": "gpupage.core.io",
    "simulate_prefetch": "gpupage.core.prefetch",
    "make_hints": "gpupage.core.prefetch",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        # bound here, so later lookups skip this hook and no submodule of the same name shadows it
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gpupage' has no attribute {name!r}")


__all__ = list(_LAZY)
