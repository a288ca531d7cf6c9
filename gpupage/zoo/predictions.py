"""Next-arrival predictions with controlled error, for learning-augmented policies.

A prediction is made at every request t of block x: the time at which x will be
requested next.  The truth is ``next_use[t]`` (the next index of x, "never" =
``NEVER``); a predictor of quality eta reports

* ``t + max(1, round(gap * exp(eta * Z)))`` with ``gap = next_use[t] - t`` and
  Z a standard normal quantised to 2**16 levels: the top 16 bits i of one
  counter-based draw pick ``Z = Phi^-1((i + 1/2) / 2**16)`` (|Z| <= 4.17), so the
  error is lognormal and multiplicative on the gap; a "never" stays "never";
* with probability ``replace``, instead a uniformly random arrival in
  ``[t + 1, t + T]`` (T = the lane's row length), whatever the truth is.

Finite predictions are capped at ``NEVER - 1``.  All float work is one host
table per eta, ``exp(eta * Z_i)`` in fixed point (:func:`noise_table`); applying
it is integer arithmetic, so the CPU path here and the Triton kernel
(``kernels.predictions``) compute the same int32 predictions on the traces' own
device.  Randomness: the lane key's ``STREAM_PREDICTION`` stream, split into
sub-streams (normal level, replace coin, replacement value).
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
from numba import njit, prange

from ..core import rng
from ..core.cpu import lane_chunks
from ..core import limits

NEVER = 1 << 30
"""Prediction (and truth) for a block that is never requested again."""
SUB_NORMAL, SUB_COIN, SUB_VALUE = 0, 2, 3
"""Sub-streams of STREAM_PREDICTION: normal level, replace coin, replacement value (shared with the kernel)."""
LEVEL_BITS = 16
"""Z takes 2**LEVEL_BITS levels, picked by the top bits of one draw."""
FRAC_BITS = 20
"""Fixed-point fraction bits of the noise multipliers."""
MAX_MULTIPLIER = 1 << 51
"""Multipliers are capped here: gap * 2**31 already passes NEVER, and gap * (m >> 20) stays in int64."""


@functools.lru_cache(maxsize=64)
def _noise_table(eta: float) -> np.ndarray:
    levels = 1 << LEVEL_BITS
    normal = NormalDist()
    return np.array([min(round(math.exp(eta * normal.inv_cdf((i + 0.5) / levels)) * (1 << FRAC_BITS)),
                         MAX_MULTIPLIER) for i in range(levels)], dtype=np.int64)


def noise_table(eta: float) -> np.ndarray:
    """int64 ``[2**16]``: ``exp(eta * Z_i) * 2**20`` rounded (capped at ``MAX_MULTIPLIER``); all 2**20 at eta = 0."""
    table = _noise_table(float(eta))
    table.flags.writeable = False
    return table


def prediction_options(options: dict | None) -> tuple[float, float]:
    """(eta, replace) from a policy options dict; defaults (0, 0)."""
    options = options or {}
    eta = _number(options, "eta")
    replace = _number(options, "replace")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if not 0 <= replace <= 1:
        raise ValueError(f"replace must be in [0, 1], got {replace}")
    return eta, replace


def _number(options: dict, name: str) -> float:
    value = options.get(name, 0.0)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


@njit(inline="always", cache=True)
def noisy_gap(gap, m):
    """round(gap * m / 2**20) in integers (gap < 2**30, m <= MAX_MULTIPLIER: no overflow)."""
    return gap * (m >> FRAC_BITS) + ((gap * (m & ((1 << FRAC_BITS) - 1)) + (1 << (FRAC_BITS - 1))) >> FRAC_BITS)


@njit(inline="always", cache=True)
def _predict_one(k_normal, k_coin, k_value, t, nu, T, table, threshold):
    """Prediction at request t whose true next use is nu (NEVER if none); k_* the sub-stream keys."""
    if threshold > 0 and rng.draw(k_coin, t) < threshold:
        return min(t + 1 + rng.uniform_below(rng.draw(k_value, t), T), NEVER - 1)
    if nu >= NEVER:
        return nu
    g = noisy_gap(nu - t, table[rng.draw(k_normal, t) >> (32 - LEVEL_BITS)])
    return t + 1 if g < 1 else min(t + g, NEVER - 1)


@njit(cache=True)
def predict_lane(trace, rkey, table, threshold, seen, out):
    """One lane's predictions into ``out`` [T]; ``seen`` ([n_ids], all NEVER) is left as it was found."""
    T = trace.shape[0]
    skey = rng.stream_key(rkey, rng.STREAM_PREDICTION)
    k_normal = rng.stream_key(skey, SUB_NORMAL)
    k_coin = rng.stream_key(skey, SUB_COIN)
    k_value = rng.stream_key(skey, SUB_VALUE)
    for t in range(T - 1, -1, -1):
        x = trace[t]
        if x < 0:
            out[t] = NEVER
            continue
        out[t] = _predict_one(k_normal, k_coin, k_value, t, seen[x], T, table, threshold)
        seen[x] = t
    for t in range(T):
        if trace[t] >= 0:
            seen[trace[t]] = NEVER


@njit(parallel=True, cache=True)
def _predict_kernel(traces, rkeys, n_ids, table, threshold, out, nchunks):
    B = traces.shape[0]
    for c in prange(nchunks):
        seen = np.full(n_ids, NEVER, dtype=np.int64)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            predict_lane(traces[b], rkeys[b], table, threshold, seen, out[b])


def check_length(T: int) -> None:
    if T >= NEVER // 2:
        raise ValueError(f"traces longer than {NEVER // 2 - 1} requests are not supported, got {T}")


def predict_next_arrivals(traces: np.ndarray, rkeys: np.ndarray, options: dict | None = None,
                          n_ids: int | None = None) -> np.ndarray:
    """Predicted next arrival for every request, int32 ``[B, T]`` (``NEVER`` on pads), on the CPU.

    Args:
        traces: int ``[B, T]`` block ids (-1 pads); sparse ids are remapped here.
        rkeys: int64 ``[B]`` lane keys (``rng.lane_keys``).
        options: ``{"eta": float >= 0, "replace": float in [0, 1]}``, both default 0.
        n_ids: an upper bound on the ids when the caller knows it (dense traces).
    """
    eta, replace = prediction_options(options)
    traces = np.ascontiguousarray(traces)
    B, T = traces.shape
    check_length(T)
    if n_ids is None:
        from ..core.simulate import dense_ids

        traces, _ = dense_ids(traces)
        n_ids = int(traces.max()) + 1 if traces.size else 1
    out = np.empty((B, T), dtype=np.int32)
    if B:
        with limits.work_threads(B):
            _predict_kernel(traces, np.asarray(rkeys, dtype=np.int64), max(n_ids, 1), noise_table(eta),
                            rng.probability_threshold(replace), out, lane_chunks(B))
    return out


def naive_predictions(trace: list[int], key: int, options: dict | None = None) -> list[int]:
    """Plain-Python reference of :func:`predict_next_arrivals` for one lane."""
    from ..core.reference import next_uses

    eta, replace = prediction_options(options)
    table = noise_table(eta)
    T = len(trace)
    skey = rng.stream_key(key, rng.STREAM_PREDICTION)
    threshold = rng.probability_threshold(replace)
    out = []
    for t, nu in enumerate(next_uses(trace)):
        if trace[t] < 0:
            out.append(NEVER)
        elif threshold > 0 and rng.draw(rng.stream_key(skey, SUB_COIN), t) < threshold:
            out.append(min(t + 1 + rng.uniform_below(rng.draw(rng.stream_key(skey, SUB_VALUE), t), T), NEVER - 1))
        elif nu >= NEVER:
            out.append(NEVER)
        else:
            level = rng.draw(rng.stream_key(skey, SUB_NORMAL), t) >> (32 - LEVEL_BITS)
            gap = ((nu - t) * int(table[level]) + 2**(FRAC_BITS - 1)) // 2**FRAC_BITS  # Python ints: exact
            out.append(min(t + max(gap, 1), NEVER - 1))
    return out
