"""blind_oracle, predictive_marker (:mod:`gpupage.zoo.baselines`), arc and clock on CUDA, bit for bit.

Same layout as :mod:`kernels.simulate`: a program owns ``BLOCK_B`` lanes (trace
read as ``[T, B]`` rows) and ``[BLOCK_K, BLOCK_B]`` register tiles of per-slot
state; every choice is an integer arg-min over slots, so no float reaches a
kernel.  Three kernels:

* ``_predictive_kernel`` (blind_oracle, predictive_marker; constexpr MARKER):
  tiles block, last access, prediction, mark, and the phase's stale set with
  each stale block's chain length.  Predictions arrive as int32 ``[T, B]``,
  computed on the device by :func:`kernels.predictions.predict_next_arrivals`.
* ``_arc_kernel``: resident tiles (block, list 1/2, recency stamp) and ghost
  tiles (block, list 1/2 or 0 = free, stamp); p in fixed point (int64).
* ``_clock_kernel``: block and reference bit; the hand's sweep is one arg-min of
  the circular distance to the first clear bit.

Small K (<= 32; <= 16 for ARC and the marker, whose six tiles would spill):
32 lanes, one warp, a thread per lane.  Larger K (<= 4096): one lane per
program, its slots spread over 1-8 warps.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.core.rng import STREAM_RANDOM_POLICY
from gpupage.zoo.arc import P_FRAC
from gpupage.zoo.baselines import ARC, BLIND_ORACLE, CLOCK, PREDICTION_CODES, PREDICTIVE_MARKER, harmonic_floor
from gpupage.zoo.predictions import NEVER, prediction_options

from .predictions import predict_next_arrivals
from .rng import draw, stream_key, uniform_below
from .launch import (OUT_SIG, KernelResult, _lane_tile, _lookup, _out_rows, _store_step, alloc_outputs, aot_spec,
                     as_int32_ids, check_tb, kernel_result, launch_outputs, tile_shape)

BLOCK_KS = (8, 16, 32, 64, 256, 1024, 4096)
# up to here a thread holds a lane's whole column (32 lanes a warp); beyond, one lane a program.
# ARC and the marker keep six tiles: at 32 slots they would spill registers.
SMALL_K = {BLIND_ORACLE: 32, PREDICTIVE_MARKER: 16, ARC: 16, CLOCK: 32}
# globals a kernel reads must be constexpr
_BIG = tl.constexpr(0x7FFFFFFF)
_BIG64 = tl.constexpr(0x7FFFFFFFFFFFFFFF)
_NEVER = tl.constexpr(NEVER)
_RANDOM = tl.constexpr(STREAM_RANDOM_POLICY)


@triton.jit
def _pick(tile, sel):
    """Per lane, the entry of ``tile`` where ``sel`` (one slot per lane) holds."""
    return tl.sum(tl.where(sel, tile, 0), axis=0)


@triton.jit
def _predictive_kernel(trace_ptr, pred_ptr, k_ptr, hk_ptr, key_ptr, faults_ptr, hits_ptr, victims_ptr,
                       B, T, want_hits, MARKER: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace, pred, hits, victims ``[T, B]``; k, hk (floor H_K), key ``[B]``."""
    lanes, lmask, Kl, slot, valid_slot = _lane_tile(k_ptr, B, BLOCK_K, BLOCK_B)
    hk = tl.load(hk_ptr + lanes, mask=lmask, other=1).to(tl.int32)
    rkey = stream_key(tl.load(key_ptr + lanes, mask=lmask, other=0), _RANDOM)
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    last = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    prd = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    marked = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    stale = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)  # the phase's stale set, by phase-start slot
    elen = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)  # chain length carried by an evicted stale block
    zero = tl.zeros([BLOCK_B], tl.int32)
    n = zero
    nm = zero
    faults = zero
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B)
    trace_ptr += lanes
    pred_ptr += lanes
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        p_t = tl.load(pred_ptr, mask=lmask, other=0)
        now = zero + t
        active, eq, hit, miss = _lookup(blk, x)
        nm += tl.sum((eq & (marked == 0)).to(tl.int32), axis=0)
        marked = tl.where(eq, 1, marked)
        last = tl.where(eq, now[None, :], last)
        prd = tl.where(eq, p_t[None, :], prd)
        cold = miss & (n < Kl)
        evict = miss & (n >= Kl)
        far = ((_NEVER - prd.to(tl.int64)) << 32) | last.to(tl.int64)
        if MARKER:
            phase = evict & (nm == Kl)
            stale = tl.where(phase[None, :], blk, stale)
            elen = tl.where(phase[None, :], 0, elen)
            marked = tl.where(phase[None, :], 0, marked)
            nm = tl.where(phase, 0, nm)
            length = tl.max(tl.where((stale == x[None, :]) & active[None, :], elen, 0), axis=0) + 1
            eligible = (marked == 0) & valid_slot
            s_pred = tl.argmin(tl.where(eligible, far, _BIG64), axis=0).to(tl.int32)
            j = uniform_below(draw(rkey, now), Kl - nm)
            rank = tl.cumsum(eligible.to(tl.int32), axis=0) - 1
            s_rand = tl.sum(tl.where(eligible & (rank == j[None, :]), slot, 0), axis=0)
            s_ev = tl.where(length <= hk, s_pred, s_rand)
            elen = tl.where((slot == s_ev[None, :]) & evict[None, :], length[None, :], elen)
        else:
            s_ev = tl.argmin(tl.where(valid_slot, far, _BIG64), axis=0).to(tl.int32)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & miss[None, :]
        victim = tl.where(evict, _pick(blk, sel), -1)
        blk = tl.where(sel, x[None, :], blk)
        last = tl.where(sel, now[None, :], last)
        prd = tl.where(sel, p_t[None, :], prd)
        marked = tl.where(sel, 1, marked)
        nm += miss.to(tl.int32)
        n += cold.to(tl.int32)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
        pred_ptr += B
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


@triton.jit
def _arc_kernel(trace_ptr, k_ptr, faults_ptr, hits_ptr, victims_ptr, B, T, want_hits,
                P_BITS: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace, hits, victims ``[T, B]``; k ``[B]``.  lst: 1 = T1, 2 = T2; glst: 1 = B1, 2 = B2, 0 = free."""
    lanes, lmask, Kl, slot, valid_slot = _lane_tile(k_ptr, B, BLOCK_K, BLOCK_B)
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    lst = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    stamp = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    gblk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    glst = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    gstamp = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    zero = tl.zeros([BLOCK_B], tl.int32)
    n1 = zero
    n2 = zero
    nb1 = zero
    nb2 = zero
    faults = zero
    p = zero.to(tl.int64)
    one = tl.full([BLOCK_B], 1 << P_BITS, tl.int64)
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B)
    trace_ptr += lanes
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        now = zero + t
        # case I: hit, to the MRU end of T2
        active, eq, hit, miss = _lookup(blk, x)
        was1 = tl.max((eq & (lst == 1)).to(tl.int32), axis=0)
        n1 -= was1
        n2 += was1
        lst = tl.where(eq, 2, lst)
        stamp = tl.where(eq, now[None, :], stamp)
        # cases II / III: ghost hit adapts p; the ghost entry is freed at once
        geq = (gblk == x[None, :]) & (glst > 0) & active[None, :]
        ghit = tl.max(geq.to(tl.int32), axis=0) > 0
        in_b2 = tl.max((geq & (glst == 2)).to(tl.int32), axis=0) > 0
        in_b1 = ghit & (in_b2 == 0)
        d1 = tl.maximum((nb2.to(tl.int64) << P_BITS) // tl.maximum(nb1, 1).to(tl.int64), one)
        d2 = tl.maximum((nb1.to(tl.int64) << P_BITS) // tl.maximum(nb2, 1).to(tl.int64), one)
        p = tl.where(in_b1, tl.minimum(p + d1, Kl.to(tl.int64) << P_BITS), p)
        p = tl.where(in_b2, tl.maximum(p - d2, 0), p)
        nb1 -= in_b1.to(tl.int32)
        nb2 -= in_b2.to(tl.int32)
        glst = tl.where(geq, 0, glst)
        # case IV: a miss everywhere on a full cache may first drop the LRU ghost of B1 or B2
        full = (n1 + n2) >= Kl
        evict = miss & full
        fresh = evict & (ghit == 0)
        case_a = fresh & (n1 + nb1 == Kl)
        direct = case_a & (n1 >= Kl)
        drop1 = case_a & (n1 < Kl)
        drop2 = fresh & (case_a == 0) & (n1 + n2 + nb1 + nb2 == 2 * Kl)
        which = tl.where(drop1, 1, 2)
        g = tl.argmin(tl.where(glst == which[None, :], gstamp, _BIG), axis=0).to(tl.int32)
        glst = tl.where((slot == g[None, :]) & (drop1 | drop2)[None, :], 0, glst)
        nb1 -= drop1.to(tl.int32)
        nb2 -= drop2.to(tl.int32)
        # REPLACE: the LRU of T1 or T2 leaves (to its ghost list unless direct)
        n1p = n1.to(tl.int64) << P_BITS
        from_t1 = direct | ((n1 >= 1) & ((n1p > p) | (in_b2 & (n1p == p))))
        L = tl.where(from_t1, 1, 2)
        s_ev = tl.argmin(tl.where(lst == L[None, :], stamp, _BIG), axis=0).to(tl.int32)
        s = tl.where(evict, s_ev, n1 + n2)
        sel = (slot == s[None, :]) & miss[None, :]
        victim = tl.where(evict, _pick(blk, sel), -1)
        to_ghost = evict & (direct == 0)
        free = tl.argmin(tl.where((glst == 0) & valid_slot, slot, _BIG), axis=0).to(tl.int32)
        gsel = (slot == free[None, :]) & to_ghost[None, :]
        gblk = tl.where(gsel, victim[None, :], gblk)
        glst = tl.where(gsel, L[None, :], glst)
        gstamp = tl.where(gsel, now[None, :], gstamp)
        nb1 += (to_ghost & (L == 1)).to(tl.int32)
        nb2 += (to_ghost & (L == 2)).to(tl.int32)
        n1 -= (evict & (L == 1)).to(tl.int32)
        n2 -= (evict & (L == 2)).to(tl.int32)
        # the new block: MRU of T2 after a ghost hit, else of T1
        blk = tl.where(sel, x[None, :], blk)
        lst = tl.where(sel, tl.where(ghit, 2, 1)[None, :], lst)
        stamp = tl.where(sel, now[None, :], stamp)
        n1 += (miss & (ghit == 0)).to(tl.int32)
        n2 += (miss & ghit).to(tl.int32)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


@triton.jit
def _clock_kernel(trace_ptr, k_ptr, faults_ptr, hits_ptr, victims_ptr, B, T, want_hits,
                  BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace, hits, victims ``[T, B]``; k ``[B]``."""
    lanes, lmask, Kl, slot, valid_slot = _lane_tile(k_ptr, B, BLOCK_K, BLOCK_B)
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    ref = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    zero = tl.zeros([BLOCK_B], tl.int32)
    n = zero
    hand = zero
    faults = zero
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B)
    trace_ptr += lanes
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        active, eq, hit, miss = _lookup(blk, x)
        ref = tl.where(eq, 1, ref)
        cold = miss & (n < Kl)
        evict = miss & (n >= Kl)
        # the hand stops at the first clear bit at or after it, clearing the bits it passes
        dist = (slot - hand[None, :] + Kl[None, :]) % Kl[None, :]
        dmin = tl.min(tl.where((ref == 0) & valid_slot, dist, _BIG), axis=0)
        none = dmin == _BIG  # every bit set: a full turn clears them all, the hand's slot goes
        s_ev = tl.where(none, hand, (hand + dmin) % Kl)
        ref = tl.where(evict[None, :] & ((dist < dmin[None, :]) | none[None, :]), 0, ref)
        hand = tl.where(evict, (s_ev + 1) % Kl, hand)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & miss[None, :]
        victim = tl.where(evict, _pick(blk, sel), -1)
        blk = tl.where(sel, x[None, :], blk)
        ref = tl.where(sel, 0, ref)
        n += cold.to(tl.int32)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


def block_shape(kmax: int, code: int):
    """(BLOCK_K, BLOCK_B, num_warps) for the largest per-lane K of a launch of policy ``code``."""
    small = tuple(b for b in BLOCK_KS if b <= SMALL_K[code])
    return tile_shape(kmax, small, BLOCK_KS[len(small):], 64, 8, "the baseline triton kernels handle")


def launch(code: int, traces_tb: torch.Tensor, pred_tb: torch.Tensor | None, K: torch.Tensor, hk: torch.Tensor,
           keys: torch.Tensor, kmax: int, return_hits: bool):
    """Launcher on the ``[T, B]`` layout (contiguous int32): validates, allocates,
    picks the shape and grid.  Returns (faults int64 [B], hits int8 [T, B] | None,
    victims int32 [T, B] | None)."""
    T, B = check_tb(traces_tb)
    if T >= NEVER // 2:
        raise ValueError(f"the baseline triton kernels handle T < {NEVER // 2}, got {T}")
    BK, BB, warps = block_shape(kmax, code)
    faults, hits, victims = alloc_outputs(T, B, return_hits, traces_tb.device)
    grid = (triton.cdiv(B, BB),)
    common = dict(BLOCK_K=BK, BLOCK_B=BB, num_warps=warps)
    if code == ARC:
        _arc_kernel[grid](traces_tb, K, faults, hits, victims, B, T, int(return_hits), P_BITS=P_FRAC, **common)
    elif code == CLOCK:
        _clock_kernel[grid](traces_tb, K, faults, hits, victims, B, T, int(return_hits), **common)
    else:
        _predictive_kernel[grid](traces_tb, pred_tb, K, hk, keys, faults, hits, victims, B, T, int(return_hits),
                                 MARKER=code == PREDICTIVE_MARKER, **common)
    return launch_outputs(faults, hits, victims, return_hits)


def simulate(traces: torch.Tensor, policy, K: torch.Tensor, keys: torch.Tensor, return_hits: bool = False,
             options: dict | None = None) -> KernelResult:
    """blind_oracle, predictive_marker, arc or clock on the traces' device (the ``Policy.triton`` contract).

    Args:
        traces: integer ``[B, T]`` block ids (-1 pads), CUDA (or CPU under TRITON_INTERPRET=1).
        policy: one of this module's :class:`~gpupage.core.policies.Policy` entries.
        K: int64 ``[B]`` per-lane cache sizes.  keys: int64 ``[B]`` lane keys (predictions, random choices).
        options: ``{"eta", "replace"}`` of :mod:`gpupage.zoo.predictions` (prediction policies; others ignore it).
    Returns:
        :class:`~kernels.simulate.KernelResult`: faults int64 ``[B]``, hits bool ``[B, T]`` and
        victims int64 ``[B, T]`` (or None).

    Host work: ``max(K)`` and floor(H_K) per lane; predictions are made on the device.
    """
    code = policy.code
    if code not in (BLIND_ORACLE, PREDICTIVE_MARKER, ARC, CLOCK):
        raise ValueError(f"policy {policy.name!r} is not a baseline of kernels.baselines")
    prediction_options(options)
    traces, uniq = as_int32_ids(traces)
    B, T = traces.shape
    dev = traces.device
    # K >= T behaves exactly like K = T (the cache never fills past T blocks)
    Kc = K.detach().cpu().to(torch.int64).clamp(max=max(T, 1))
    hk = torch.from_numpy(harmonic_floor(Kc.numpy())).to(dev)
    keys = keys.to(dev, torch.int64).contiguous()
    traces_tb = traces.t().contiguous()
    pred_tb = predict_next_arrivals(traces_tb, keys, options) if code in PREDICTION_CODES else None
    faults, hits, victims = launch(code, traces_tb, pred_tb, Kc.to(dev).contiguous(), hk, keys,
                                   int(Kc.max()), return_hits)
    return kernel_result(faults, hits, victims, uniq)


_PRED_SIG = {"trace_ptr": "*i32", "pred_ptr": "*i32", "k_ptr": "*i64", "hk_ptr": "*i64", "key_ptr": "*i64", **OUT_SIG}
_ONLINE_SIG = {"trace_ptr": "*i32", "k_ptr": "*i64", **OUT_SIG}


def _spec(code, name, fn, signature, bk, **constexprs):
    return aot_spec(f"{name} K<={bk}", fn, signature, block_shape(bk, code), **constexprs)


# Every specialisation `simulate` can launch, for scripts/compile_kernels.py.
AOT_SPECS = [
    spec
    for bk in BLOCK_KS
    for spec in (
        _spec(BLIND_ORACLE, "blind_oracle", _predictive_kernel, _PRED_SIG, bk, MARKER=False),
        _spec(PREDICTIVE_MARKER, "predictive_marker", _predictive_kernel, _PRED_SIG, bk, MARKER=True),
        _spec(ARC, "arc", _arc_kernel, _ONLINE_SIG, bk, P_BITS=P_FRAC),
        _spec(CLOCK, "clock", _clock_kernel, _ONLINE_SIG, bk),
    )
]
