"""Counter-based integer RNG shared by every backend.

Every random draw in gpupage is ``draw(lane_key, stream, position)``: a pure
function of integers built from murmur3's 32-bit finaliser.  Nothing carries
state from one draw to the next, so a Triton kernel, the numba CPU path and a
plain Python loop produce the same numbers bit for bit, and a lane's numbers
never depend on the rest of its batch.

All arithmetic is mod 2**32 on values held in int64 (masking after each
multiply), which numba, numpy and Triton agree on.  Sampling never touches
floats: ``uniform_below(h, n) = (h * n) >> 32`` (Lemire's multiply-shift,
bias below n / 2**32), Zipf by integer CDF thresholds computed once on the host.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9
_M1 = 0x85EBCA6B
_M2 = 0xC2B2AE35

# Streams: one per independent use of randomness.
STREAM_WORKING_SET = 1
STREAM_ZIPF = 2
STREAM_PERTURB_POS = 3
STREAM_PERTURB_VALUE = 4
STREAM_NOISE = 5
STREAM_NOISE_VALUE = 6
STREAM_RANDOM_POLICY = 7
STREAM_ASSOC = 8
STREAM_CLOSED_LOOP = 9
STREAM_PREDICTION = 10
STREAM_EXPERT_MIX = 11  # DAgger: per-decision choice between expert and learner (learned policy)
STREAM_SHARDS = 12
STREAM_HINT = 13  # prefetch hints: is h_t noise (issue 13) ...
STREAM_HINT_VALUE = 14  # ... and which block a noisy hint names
STREAM_GYM_EPISODE = 15  # gymnasium adapter: the trace seed of a lane's later episodes
STREAM_TRACE_WINDOWS = 16  # where each training window of a trace file starts


@njit(inline="always", cache=True)
def fmix32(h):
    h ^= h >> 16
    h = (h * _M1) & MASK32
    h ^= h >> 13
    h = (h * _M2) & MASK32
    h ^= h >> 16
    return h


@njit(inline="always", cache=True)
def lane_key(seed, lane):
    """Key of one lane: (seed, lane) hashed; seeds may use 64 bits."""
    h = fmix32((seed & MASK32) ^ GOLDEN)
    h = fmix32(h ^ ((seed >> 32) & MASK32))
    return fmix32(h ^ (lane & MASK32))


@njit(inline="always", cache=True)
def stream_key(key, stream):
    return fmix32(key ^ ((stream * GOLDEN) & MASK32))


@njit(inline="always", cache=True)
def draw(skey, position):
    """32-bit draw at ``position`` of the stream whose key is ``skey``."""
    return fmix32(fmix32(skey ^ (position & MASK32)) ^ GOLDEN)


@njit(inline="always", cache=True)
def uniform_below(h, n):
    """Integer in [0, n) from a 32-bit draw ``h``; n < 2**31."""
    return (h * n) >> 32


def lane_keys(seed, batch: int) -> np.ndarray:
    """Per-lane keys, int64 [B].

    ``seed`` an int: lane b gets key(seed, b) (B independent lanes from one seed).
    ``seed`` a sequence/array of B ints: lane b gets key(seed[b], 0), so a lane's
    randomness depends only on its own seed, wherever it sits in the batch.
    """
    scalar = np.ndim(seed) == 0
    try:
        seeds = np.full(batch, int(seed), dtype=np.int64) if scalar else np.asarray(seed, dtype=np.int64).reshape(-1)
    except OverflowError:
        raise ValueError("seeds must fit in 64 bits (-2**63 .. 2**63-1)") from None
    if scalar:
        lanes = np.arange(batch, dtype=np.int64)
    else:
        if seeds.shape[0] != batch:
            raise ValueError(f"got {seeds.shape[0]} seeds for a batch of {batch} lanes")
        lanes = np.zeros(batch, dtype=np.int64)
    return _lane_keys(seeds, lanes)


@njit(cache=True)
def _lane_keys(seeds, lanes):
    out = np.empty(seeds.shape[0], dtype=np.int64)
    for b in range(seeds.shape[0]):
        out[b] = lane_key(seeds[b], lanes[b])
    return out


def probability_threshold(p: float) -> int:
    """Integer threshold so that ``draw < threshold`` happens with probability p."""
    return int(min(max(p, 0.0), 1.0) * 2**32)


def zipf_thresholds(n: int, alpha: float) -> np.ndarray:
    """CDF thresholds (int64 [n-1]) for ranks 0..n-1 with P(r) ~ (r+1)^-alpha.

    rank = number of thresholds <= h.  Computed once in float64 on the host and
    handed to every backend as integers, so sampling itself is integer-only.
    """
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** alpha
    cdf = np.cumsum(weights) / weights.sum()
    return np.floor(cdf[:-1] * 2**32).astype(np.int64)
