"""Noisy next-arrival predictions on the traces' device, bit for bit with
:func:`gpupage.zoo.predictions.predict_next_arrivals` (its reference:
:func:`gpupage.zoo.predictions.naive_predictions`).

The true next uses come from one sort per lane (:func:`kernels.simulate.next_use`);
``_predict_kernel`` then adds the noise with integers only: the host's fixed-point
table ``exp(eta * Z_i)`` (:func:`gpupage.zoo.predictions.noise_table`) holds all the
float work.  The kernel is elementwise over the ``[T, B]`` layout that the
baselines kernels read, BLOCK consecutive requests a program, so every load and
store coalesces; offsets are int64 (T * B may pass 2**31).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.core.rng import STREAM_PREDICTION, probability_threshold
from gpupage.zoo.predictions import (FRAC_BITS, LEVEL_BITS, NEVER, SUB_COIN, SUB_NORMAL, SUB_VALUE, check_length,
                                 noise_table, prediction_options)

from .rng import draw, stream_key, uniform_below
from .simulate import next_use

BLOCK = 1024
WARPS = 4
_SUB_NORMAL, _SUB_COIN, _SUB_VALUE = tl.constexpr(SUB_NORMAL), tl.constexpr(SUB_COIN), tl.constexpr(SUB_VALUE)


@triton.jit
def _predict_kernel(trace_ptr, next_ptr, key_ptr, table_ptr, out_ptr, B, T, threshold,
                    STREAM: tl.constexpr, LEVEL_BITS: tl.constexpr, FRAC_BITS: tl.constexpr, NEVER: tl.constexpr,
                    BLOCK: tl.constexpr):
    """trace_ptr int32 [T, B] (-1 pads); next_ptr int32 [T, B] true next use (NEVER: none);
    key_ptr int64 [B] lane keys; table_ptr int64 [2**LEVEL_BITS]; out_ptr int32 [T, B]."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    t = i // B
    b = i - t * B
    m = t < T  # i < T * B without forming T * B in int32
    x = tl.load(trace_ptr + i, mask=m, other=-1)
    nu = tl.load(next_ptr + i, mask=m, other=NEVER).to(tl.int64)
    skey = stream_key(tl.load(key_ptr + b, mask=m, other=0), STREAM)
    level = (draw(stream_key(skey, _SUB_NORMAL), t) >> (32 - LEVEL_BITS)).to(tl.int32)
    mult = tl.load(table_ptr + level, mask=m, other=1 << FRAC_BITS)
    gap = nu - t
    g = gap * (mult >> FRAC_BITS) + ((gap * (mult & ((1 << FRAC_BITS) - 1)) + (1 << (FRAC_BITS - 1))) >> FRAC_BITS)
    pred = tl.where(g < 1, t + 1, tl.minimum(t + g, NEVER - 1))
    pred = tl.where(nu >= NEVER, NEVER, pred)
    coin = draw(stream_key(skey, _SUB_COIN), t).to(tl.int64) < threshold
    replaced = tl.minimum(t + 1 + uniform_below(draw(stream_key(skey, _SUB_VALUE), t), T).to(tl.int64), NEVER - 1)
    pred = tl.where(coin, replaced, pred)
    tl.store(out_ptr + i, tl.where(x < 0, NEVER, pred).to(tl.int32), mask=m)


def launch_predict(traces_tb: torch.Tensor, next_tb: torch.Tensor, keys: torch.Tensor, table: torch.Tensor,
                   threshold: int) -> torch.Tensor:
    """Launcher on the ``[T, B]`` layout: validates, allocates and computes the grid."""
    T, B = traces_tb.shape
    for name, x, dtype in (("traces_tb", traces_tb, torch.int32), ("next_tb", next_tb, torch.int32),
                           ("keys", keys, torch.int64), ("table", table, torch.int64)):
        if x.dtype != dtype or not x.is_contiguous() or x.device != traces_tb.device:
            raise ValueError(f"{name} must be contiguous {dtype} on {traces_tb.device}")
    if next_tb.shape != traces_tb.shape or keys.shape != (B,) or table.shape != (1 << LEVEL_BITS,):
        raise ValueError("shapes: traces_tb and next_tb [T, B], keys [B], table [2**16]")
    out = torch.empty((T, B), dtype=torch.int32, device=traces_tb.device)
    if T * B:
        _predict_kernel[(triton.cdiv(T * B, BLOCK),)](traces_tb, next_tb, keys, table, out, B, T, threshold,
                                                      STREAM=STREAM_PREDICTION, LEVEL_BITS=LEVEL_BITS,
                                                      FRAC_BITS=FRAC_BITS, NEVER=NEVER, BLOCK=BLOCK,
                                                      num_warps=WARPS)
    return out


def predict_next_arrivals(traces_tb: torch.Tensor, keys: torch.Tensor, options: dict | None = None) -> torch.Tensor:
    """Predicted next arrival of every request, on the traces' device; no host round trip.

    Args:
        traces_tb: contiguous int32 ``[T, B]`` block ids (-1 pads), the layout the baselines
            kernels read; CUDA (or CPU under TRITON_INTERPRET=1).
        keys: int64 ``[B]`` lane keys (``gpupage.core.rng.lane_keys``).
        options: ``{"eta", "replace"}`` of :mod:`gpupage.zoo.predictions`.
    Returns:
        int32 ``[T, B]``, ``NEVER`` on pads.
    """
    eta, replace = prediction_options(options)
    check_length(traces_tb.shape[0])
    dev = traces_tb.device
    nu = next_use(traces_tb.t())
    next_tb = torch.where(nu >= 0, nu, NEVER).to(torch.int32).t().contiguous()
    table = torch.from_numpy(noise_table(eta).copy()).to(dev)
    return launch_predict(traces_tb, next_tb, keys.to(dev, torch.int64).contiguous(), table,
                          probability_threshold(replace))


_SIG = {"trace_ptr": "*i32", "next_ptr": "*i32", "key_ptr": "*i64", "table_ptr": "*i64", "out_ptr": "*i32",
        "B": "i32", "T": "i32", "threshold": "i64"}

AOT_SPECS = [
    dict(name="predict", fn=_predict_kernel, signature=_SIG,
         constexprs=dict(STREAM=STREAM_PREDICTION, LEVEL_BITS=LEVEL_BITS, FRAC_BITS=FRAC_BITS, NEVER=NEVER,
                         BLOCK=BLOCK), num_warps=WARPS)
]
