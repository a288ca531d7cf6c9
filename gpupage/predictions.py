"""Next-arrival predictions with controlled error, for learning-augmented policies.

A prediction is made at every request t of block x: the time at which x will be
requested next.  The truth is ``next_use[t]`` (the next index of x, "never" =
``NEVER``); a predictor of quality eta reports

* ``t + max(1, round(gap * exp(eta * Z)))`` with ``gap = next_use[t] - t`` and
  Z ~ N(0, 1) from Box-Muller on two counter-based draws (lognormal,
  multiplicative noise on the gap; a "never" stays "never");
* with probability ``replace``, instead a uniformly random arrival in
  ``[t + 1, t + T]`` (T = the lane's row length), whatever the truth is.

Finite predictions are capped at ``NEVER - 1``.  The float work happens once,
on the host, here; every backend receives the same int32 ``[B, T]`` array, so
the simulations agree exactly.  Randomness: the lane key's ``STREAM_PREDICTION``
stream, split into sub-streams (normal draws, replace coin, replacement value).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import rng
from .cpu import lane_chunks

NEVER = 1 << 30
"""Prediction (and truth) for a block that is never requested again."""
_U1, _U2, _COIN, _VALUE = range(4)  # sub-streams of STREAM_PREDICTION
_INV32 = 1.0 / 4294967296.0


def prediction_options(options: dict | None) -> tuple[float, float]:
    """(eta, replace) from a policy options dict; defaults (0, 0); other keys are ignored."""
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
def _predict_one(k_u1, k_u2, k_coin, k_value, t, nu, T, eta, threshold):
    """Prediction at request t whose true next use is nu (NEVER if none); k_* the sub-stream keys."""
    if threshold > 0 and rng.draw(k_coin, t) < threshold:
        return min(t + 1 + rng.uniform_below(rng.draw(k_value, t), T), NEVER - 1)
    if nu >= NEVER or eta == 0.0:  # exp(0) = 1: the noise below would return nu itself
        return nu
    u1 = (rng.draw(k_u1, t) + 1) * _INV32  # (0, 1]: log is finite
    u2 = rng.draw(k_u2, t) * _INV32
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    gap = np.floor((nu - t) * math.exp(eta * z) + 0.5)  # stays float: the product may exceed int64
    if gap < 1.0:
        return t + 1
    if gap >= NEVER - 1 - t:
        return NEVER - 1
    return t + int(gap)


@njit(parallel=True, cache=True)
def _predict_kernel(traces, rkeys, n_ids, eta, threshold, out, nchunks):
    B, T = traces.shape
    for c in prange(nchunks):
        seen = np.full(n_ids, NEVER, dtype=np.int64)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            skey = rng.stream_key(rkeys[b], rng.STREAM_PREDICTION)
            k_u1 = rng.stream_key(skey, _U1)
            k_u2 = rng.stream_key(skey, _U2)
            k_coin = rng.stream_key(skey, _COIN)
            k_value = rng.stream_key(skey, _VALUE)
            for t in range(T - 1, -1, -1):
                x = traces[b, t]
                if x < 0:
                    out[b, t] = NEVER
                    continue
                out[b, t] = _predict_one(k_u1, k_u2, k_coin, k_value, t, seen[x], T, eta, threshold)
                seen[x] = t
            for t in range(T):
                if traces[b, t] >= 0:
                    seen[traces[b, t]] = NEVER


def predict_next_arrivals(traces: np.ndarray, rkeys: np.ndarray, options: dict | None = None,
                          n_ids: int | None = None) -> np.ndarray:
    """Predicted next arrival for every request, int32 ``[B, T]`` (``NEVER`` on pads).

    Args:
        traces: int ``[B, T]`` block ids (-1 pads); sparse ids are remapped here.
        rkeys: int64 ``[B]`` lane keys (``rng.lane_keys``).
        options: ``{"eta": float >= 0, "replace": float in [0, 1]}``, both default 0.
        n_ids: an upper bound on the ids when the caller knows it (dense traces).
    """
    eta, replace = prediction_options(options)
    traces = np.ascontiguousarray(traces)
    B, T = traces.shape
    if T >= NEVER // 2:
        raise ValueError(f"traces longer than {NEVER // 2 - 1} requests are not supported, got {T}")
    if n_ids is None:
        from .simulate import dense_ids

        traces, _ = dense_ids(traces)
        n_ids = int(traces.max()) + 1 if traces.size else 1
    out = np.empty((B, T), dtype=np.int32)
    if B:
        _predict_kernel(traces, np.asarray(rkeys, dtype=np.int64), max(n_ids, 1), eta,
                        rng.probability_threshold(replace), out, lane_chunks(B))
    return out


def naive_predictions(trace: list[int], key: int, options: dict | None = None) -> list[int]:
    """Plain-Python reference of :func:`predict_next_arrivals` for one lane."""
    from .reference import next_uses

    eta, replace = prediction_options(options)
    T = len(trace)
    skey = rng.stream_key(key, rng.STREAM_PREDICTION)
    threshold = rng.probability_threshold(replace)
    out = []
    for t, nu in enumerate(next_uses(trace)):
        if trace[t] < 0:
            out.append(NEVER)
        elif threshold > 0 and rng.draw(rng.stream_key(skey, _COIN), t) < threshold:
            out.append(min(t + 1 + rng.uniform_below(rng.draw(rng.stream_key(skey, _VALUE), t), T), NEVER - 1))
        elif nu >= NEVER:
            out.append(NEVER)
        else:
            u1 = (rng.draw(rng.stream_key(skey, _U1), t) + 1) / 2**32
            u2 = rng.draw(rng.stream_key(skey, _U2), t) / 2**32
            z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
            gap = math.floor((nu - t) * math.exp(eta * z) + 0.5)
            out.append(min(t + max(gap, 1), NEVER - 1))
    return out
