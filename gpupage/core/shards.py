"""Spatial sampling (SHARDS, Waldspurger et al., FAST 2015) for traces too large to replay.

A block is kept when the hash of its id falls below ``rate * 2**32``: every request of a kept
block stays, every request of any other block goes, so the sample is a trace of about
``rate`` times the blocks with their own reuse pattern.  A cache of K blocks on the full trace
is modelled by a cache of ``round(K * rate)`` blocks (at least 1) on the sample, for any policy
(the "miniature simulation" of Waldspurger et al., ATC 2017); the sample's miss ratio
estimates the full trace's.  The hash is the project's counter-based one
(:mod:`gpupage.core.rng`, stream ``STREAM_SHARDS``) of the block's id as the file gave it, so a
block is in or out whatever else the trace holds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import rng


def check_rate(rate: float) -> float:
    if not (isinstance(rate, (int, float, np.integer, np.floating)) and 0 < rate <= 1):  # NaN fails too
        raise ValueError(f"sample rate must be in (0, 1], got {rate!r}")
    return float(rate)


def sample_mask(ids, rate: float, seed: int = 0) -> np.ndarray:
    """bool [T]: which requests of the block ids ``ids`` (int64, any values) a SHARDS sample keeps."""
    threshold = rng.probability_threshold(check_rate(rate))
    skey = rng.stream_key(rng.lane_key(int(seed), 0), rng.STREAM_SHARDS)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty(ids.shape[0], dtype=np.bool_)
    _keep(ids, skey, threshold, out)
    return out


def scaled_k(K: int, rate: float) -> int:
    """The cache size that models K blocks on a sample taken at ``rate``."""
    return max(1, int(round(K * rate)))


@njit(cache=True)
def _keep(ids, skey, threshold, out):
    for i in range(ids.shape[0]):
        x = ids[i]
        out[i] = rng.draw(rng.draw(skey, x >> 32), x & rng.MASK32) < threshold
