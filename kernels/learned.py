"""The ``learned`` policy on CUDA, bit for bit (:mod:`gpupage.zoo.learned`'s docstring is the specification).

Integers only: features by shifts and compares over a ``[8, BK, BB]`` stack, the decay table
gathered from global memory, the network in int32 with its weights loaded from a small global
buffer (L1-resident) right where they are used.  The first layer is one ``[H1, BK, BB]`` tile
with the hidden units in-thread, so the second layer's sums over them need no shuffles; its H2
units run one at a time.  Per-block state (count, last use, reuse gap, three decayed counts:
int32 ``[n_ids, 6, B]``, lanes fastest) is gathered and scattered once per request, and so are the
change detector's epoch and candidate counts (int64 ``[n_ids, 2, B]``, ``generation << 32 | count``);
its CUSUM is per-lane registers, and a decision gathers the resident blocks' counts.  Two kernels:

* ``_learned_kernel`` (K <= 64): a program owns ``BLOCK_B`` lanes and ``[BLOCK_K, BLOCK_B]``
  register tiles of per-slot state (block, last access, insertion, hits, and copies of the
  block's count, gap and decayed counts), 64 elements a tile over two warps (8 lanes up to K = 8,
  one lane up to 64: 16- and 32-slot shapes spilled); a step where no lane of the program evicts
  skips the network.
* ``_learned_chunked_kernel`` (K up to 16384): one lane per program over 8 warps; per-slot
  state (block, last access, insertion, hits, then a decision's candidates) in a global
  ``[B, 5, Kmax]`` scratch and a block -> slot map, so a request costs O(1); a decision scores
  the slots (or the candidates) ``CHUNK`` at a time, keeping the running arg-min.  The context's
  share of the first layer is computed once a decision and reloaded per chunk from a ``[B, H1]``
  row (kept in registers across chunks it spilled on sm_90).

``candidates = C``: the C least recently accessed slots are those whose last access is at most
the C-th smallest, found by a 30-step binary search on that time (last accesses are distinct).
The register kernel masks the others out of its tile; before Triton 3.9 it ranks the slots
instead (``RANK_CANDIDATES``).  The chunked kernel gathers the C slot
numbers into a per-lane list (a prefix sum a chunk) and scores only those: at K = 4096 and C = 64
one 256-slot tile of network work a decision instead of 16 (the search's compares remain, 30 passes
over the K last-access times).

The first hidden width must be a power of two here (``tl.arange``); the CPU path takes any width.

ptxas, Triton 3.9 (sm_80 / sm_90): widths 32x16 160 / 157 registers at K <= 8, 255 / 255 at K <= 64,
255 / 120 chunked; widths 32x32 198 / 201, 255 / 255 and 255 / 151; no spills.  Triton 3.6 spills at
K <= 64 (18-20 KB: it hoists the weight loads) and 76-152 bytes chunked on sm_80 (20-120 before the
candidate list; none on sm_90) (tests/test_kernels_compile.py).
"""

from __future__ import annotations

import re

import numpy as np
import torch
import triton
import triton.language as tl

from gpupage.zoo import learned as _L

from .launch import (OUT_SIG, KernelResult, _lookup, _out_rows, _store_step, alloc_outputs, aot_spec, as_int32_ids,
                     check_tb, kernel_result, launch_outputs, remap_ids)

TILE = 64  # elements of a register tile (two warps, one per thread: the [H1] hidden column of each lives in-thread)
TILE_WARPS = 2
SMALL_BLOCK_K = (8, 64)  # 32-slot (two lanes) and, with spec v2's inputs, 16-slot (four lanes) shapes spill
CHUNK = 256
CHUNK_WARPS = 8
MAX_K = 16384
# How the register kernel finds the C least recently accessed slots.  3.9: a binary search on the C-th smallest
# last access (30 sums over the slots).  Before 3.9 (3.6 on the acceptance GPUs): each slot's rank, from one
# [BK, BK, BB] compare, because for the search's sums 3.6 kept the slot tiles in every thread and spilled
# 18-20 KB (by rank: 0.7 KB).  3.9 spills 276 bytes by rank and none by the search.
RANK_CANDIDATES = tuple(int(v) for v in re.findall(r"\d+", triton.__version__)[:2]) < (3, 9)
SCRATCH_LIMIT = 1 << 28  # per-block scratch entries beyond which ids are remapped to 0..n-1
NF = 6  # per-block fields: count, last_use, gap, dc_16, dc_128, dc_1024
_NF = tl.constexpr(NF)
NOVEL_GAP, GAIN, DECAY, ALARM, REFRACTORY, STALE, SUSPECT = (tl.constexpr(v) for v in _L.ADA)
_RM = [int(v) for v in _L.rate_muls()]
RM0, RM1, RM2 = tl.constexpr(_RM[0]), tl.constexpr(_RM[1]), tl.constexpr(_RM[2])
_BIG64 = tl.constexpr(0x7FFFFFFFFFFFFFFF)


@triton.jit
def _log2fx(v):
    """L(v) of the specification, elementwise (v >= 0 int32)."""
    u = v + 1
    w = u
    e = tl.zeros_like(u)
    b = w >= 65536
    w = tl.where(b, w >> 16, w)
    e += tl.where(b, 16, 0)
    b = w >= 256
    w = tl.where(b, w >> 8, w)
    e += tl.where(b, 8, 0)
    b = w >= 16
    w = tl.where(b, w >> 4, w)
    e += tl.where(b, 4, 0)
    b = w >= 4
    w = tl.where(b, w >> 2, w)
    e += tl.where(b, 2, 0)
    e += tl.where(w >= 2, 1, 0)
    f = tl.where(e >= 3, u >> tl.maximum(e - 3, 0), u << tl.maximum(3 - e, 0)) & 7
    return 8 * e + f


@triton.jit
def _decay(frac_ptr, dt, OFF: tl.constexpr, LH: tl.constexpr):
    """D_h(dt) (int64) for the half-life 2**LH whose fractions start at frac_ptr + OFF."""
    q = tl.minimum(dt >> LH, 17)
    return tl.load(frac_ptr + OFF + (dt & ((1 << LH) - 1))).to(tl.int64) >> q.to(tl.int64)


@triton.jit
def _value(c, dt, frac_ptr, OFF: tl.constexpr, LH: tl.constexpr):
    """V_h: counter c decayed over dt requests (int32)."""
    return ((c.to(tl.int64) * _decay(frac_ptr, dt, OFF, LH)) >> 16).to(tl.int32)


@triton.jit
def _rate(c, dt, frac_ptr, OFF: tl.constexpr, LH: tl.constexpr, RM: tl.constexpr):
    """R_h: the decayed rate per request times 256, saturated at 255."""
    return tl.minimum((_value(c, dt, frac_ptr, OFF, LH).to(tl.int64) * RM) >> 24, 255).to(tl.int32)


@triton.jit
def _features(t, last, ins, hits, cnt, gap, d0, d1, d2, frac_ptr):
    """Features 0..7 of every slot, stacked ``[8, BK, BB]`` (one L over the stack)."""
    dt = t - last
    i = tl.arange(0, 8)[:, None, None]
    v = tl.where(i == 0, dt[None, :, :], (t - ins)[None, :, :])
    v = tl.where(i == 2, hits[None, :, :], v)
    v = tl.where(i == 3, cnt[None, :, :], v)
    v = tl.where(i == 4, gap[None, :, :], v)
    v = tl.where(i == 5, (_value(d0, dt, frac_ptr, 0, 4) >> 10)[None, :, :], v)
    v = tl.where(i == 6, (_value(d1, dt, frac_ptr, 16, 7) >> 10)[None, :, :], v)
    v = tl.where(i == 7, (_value(d2, dt, frac_ptr, 144, 10) >> 10)[None, :, :], v)
    return _log2fx(v)


@triton.jit
def _context(t, Kl, fc0, fc1, fc2, fct, nc0, nc1, nc2, nct, S, t_change, frac_ptr):
    """Features 11..19 of each lane, each ``[1, BB]``."""
    df = t - fct
    dn = t - nct
    return (_rate(fc0, df, frac_ptr, 0, 4, RM0)[None, :], _rate(fc1, df, frac_ptr, 16, 7, RM1)[None, :],
            _rate(fc2, df, frac_ptr, 144, 10, RM2)[None, :], _rate(nc0, dn, frac_ptr, 0, 4, RM0)[None, :],
            _rate(nc1, dn, frac_ptr, 16, 7, RM1)[None, :], _rate(nc2, dn, frac_ptr, 144, 10, RM2)[None, :],
            _log2fx(Kl)[None, :], tl.minimum(16 * S, 255)[None, :], _log2fx(t - t_change)[None, :])


@triton.jit
def _detector(ada_ptr, x, active, novel, t, lanes, bb, cur, gen_ep, gen_cd, nextgen, S, resume, t_change):
    """Step 0 of request t (``gpupage.zoo.heuristics.access``): x's epoch and candidate counts, packed
    ``generation << 32 | count`` in ada int64 ``[n_ids, 2, B]`` (array ``cur`` is the epoch), then the CUSUM.
    Returns (the two counts' addresses and new values, for the caller to store after a barrier, and the
    lane's detector state cur, gen_ep, gen_cd, nextgen, S, resume, t_change)."""
    base = ada_ptr + tl.where(active, x, 0).to(tl.int64) * 2 * bb + lanes
    ep_p = base + cur.to(tl.int64) * bb
    cd_p = base + (1 - cur).to(tl.int64) * bb
    ev = tl.load(ep_p, mask=active, other=-1)
    cv = tl.load(cd_p, mask=active, other=-1)
    ep_x = tl.where((ev >> 32) == gen_ep, (ev & 0xFFFFFFFF) + 1, 1)
    cd_x = tl.where((cv >> 32) == gen_cd, (cv & 0xFFFFFFFF) + 1, 1)
    ep_v = (gen_ep.to(tl.int64) << 32) | ep_x
    cd_v = (gen_cd.to(tl.int64) << 32) | cd_x
    watch = active & (t >= resume)
    S = tl.where(watch, S + tl.where(novel, GAIN, -DECAY), S)
    restart = watch & (S <= 0)
    promote = watch & (S >= ALARM)
    S = tl.where(restart | promote, 0, S)
    cur = tl.where(promote, 1 - cur, cur)
    gen_ep = tl.where(promote, gen_cd, gen_ep)
    resume = tl.where(promote, t + REFRACTORY, resume)
    t_change = tl.where(promote, t, t_change)
    fresh = restart | promote
    gen_cd = tl.where(fresh, nextgen, gen_cd)
    nextgen = tl.where(fresh, nextgen + 1, nextgen)
    return ep_p, cd_p, ep_v, cd_v, cur, gen_ep, gen_cd, nextgen, S, resume, t_change


@triton.jit
def _detector_features(ada_ptr, blk, last, t, ok, lanes, bb, cur, gen_ep, gen_cd, S):
    """Features 8..10 of every slot ``[BK, BB]`` (blk its block, last its last access; ok: gather there)."""
    base = ada_ptr + tl.where(ok, blk, 0).to(tl.int64) * 2 * bb + lanes[None, :]
    ev = tl.load(base + cur.to(tl.int64)[None, :] * bb, mask=ok, other=-1)
    cv = tl.load(base + (1 - cur).to(tl.int64)[None, :] * bb, mask=ok, other=-1)
    in_cd = (cv >> 32) == gen_cd[None, :]
    epoch = tl.where(((ev >> 32) == gen_ep[None, :]) & (t - last <= STALE), tl.minimum(ev & 0xFFFFFFFF, 255), 0)
    cand = tl.where(in_cd, tl.minimum(cv & 0xFFFFFFFF, 255), 0)
    return epoch.to(tl.int32), cand.to(tl.int32), tl.where(in_cd & (S >= SUSPECT)[None, :], 255, 0)


@triton.jit
def _context_share(g, w_ptr, H1: tl.constexpr):
    """b1 plus the context's share of the first layer, ``[H1, 1, BB]``: the same for every slot, so a decision
    computes it once (g the 9 context features, each ``[1, BB]``).  Weights: see _score."""
    units = tl.arange(0, H1)
    a = tl.load(w_ptr + H1 * 20 + units)[:, None, None] + (g[0] * 0)[None, :, :]
    for i in tl.static_range(9):
        a += tl.load(w_ptr + (11 + i) * H1 + units)[:, None, None] * g[i][None, :, :]
    return a


@triton.jit
def _score(f, e, ctx, w_ptr, s1, s2, H1: tl.constexpr, H2: tl.constexpr, SHARED_CTX: tl.constexpr):
    """The network's score of every slot ``[BK, BB]``: f the L-features 0..7 ``[8, BK, BB]``, e features
    8..10 (three ``[BK, BB]``), ctx the 9 context features (each ``[1, BB]``) or, with SHARED_CTX, their
    _context_share.  The first layer is one ``[H1, BK, BB]`` tile (hidden units in-thread: the second layer's
    sums over them need no shuffles); the second layer runs unit by unit.  Weights (see network_buffer):
    W1 transposed [20, H1], b1 [H1], W2 [H2, H1], b2 [H2], w3 [H2].  (The register kernel adds the context
    inside the tile: computed apart, ptxas gives its 32x16 shapes 128 registers and spills.)"""
    W2: tl.constexpr = H1 * 21
    B2: tl.constexpr = W2 + H2 * H1
    W3: tl.constexpr = B2 + H2
    units = tl.arange(0, H1)
    fi = tl.arange(0, 8)[:, None, None]
    zero = tl.sum(f, axis=0) * 0
    if SHARED_CTX:
        a = ctx + zero[None, :, :]
    else:
        a = tl.load(w_ptr + H1 * 20 + units)[:, None, None] + zero[None, :, :]
    for i in tl.static_range(8):
        a += tl.load(w_ptr + i * H1 + units)[:, None, None] * tl.sum(tl.where(fi == i, f, 0), axis=0)[None, :, :]
    for i in tl.static_range(3):
        a += tl.load(w_ptr + (8 + i) * H1 + units)[:, None, None] * e[i][None, :, :]
    if not SHARED_CTX:
        for i in tl.static_range(9):
            a += tl.load(w_ptr + (11 + i) * H1 + units)[:, None, None] * ctx[i][None, :, :]
    h = tl.minimum(tl.maximum(a >> s1, 0), 255)
    score = zero
    for m in tl.static_range(H2):
        a2 = tl.sum(h * tl.load(w_ptr + W2 + m * H1 + units)[:, None, None], axis=0) + tl.load(w_ptr + B2 + m)
        score += tl.load(w_ptr + W3 + m) * tl.minimum(tl.maximum(a2 >> s2, 0), 255)
    return score


@triton.jit
def _block_read(scratch_ptr, x, active, t, lanes, bb, frac_ptr):
    """Request t of block x (per lane, where active): its per-block state after step 3.
    Returns (its scratch address, novel (a first request), novel to the detector (also: idle NOVEL_GAP
    requests or more), count, gap, dc_16, dc_128, dc_1024)."""
    base = scratch_ptr + tl.where(active, x, 0).to(tl.int64) * _NF * bb + lanes
    cnt = tl.load(base, mask=active, other=0)
    dt = t - tl.load(base + bb, mask=active, other=0)
    gap = tl.where(cnt > 0, dt, tl.load(base + 2 * bb, mask=active, other=0))
    d0 = _value(tl.load(base + 3 * bb, mask=active, other=0), dt, frac_ptr, 0, 4) + 65536
    d1 = _value(tl.load(base + 4 * bb, mask=active, other=0), dt, frac_ptr, 16, 7) + 65536
    d2 = _value(tl.load(base + 5 * bb, mask=active, other=0), dt, frac_ptr, 144, 10) + 65536
    return base, active & (cnt == 0), active & ((cnt == 0) | (dt >= NOVEL_GAP)), cnt + 1, gap, d0, d1, d2


@triton.jit
def _block_write(base, active, t, bb, cnt, gap, d0, d1, d2):
    tl.store(base, cnt, mask=active)
    tl.store(base + bb, tl.zeros_like(cnt) + t, mask=active)
    tl.store(base + 2 * bb, gap, mask=active)
    tl.store(base + 3 * bb, d0, mask=active)
    tl.store(base + 4 * bb, d1, mask=active)
    tl.store(base + 5 * bb, d2, mask=active)


@triton.jit
def _event(c, tc, t, on, frac_ptr, OFF: tl.constexpr, LH: tl.constexpr):
    """Counter c (last event at tc) after an event at t, where on."""
    return tl.where(on, _value(c, t - tc, frac_ptr, OFF, LH) + 65536, c)


@triton.jit
def _threshold(last, valid, cand, t):
    """Per lane, the C-th smallest last access among valid slots (``[BK, BB]`` tiles; last
    accesses are distinct and below t, so exactly C slots have last <= the result)."""
    lo = tl.zeros_like(t)
    hi = t - 1
    for _ in range(30):
        mid = (lo + hi) >> 1
        ge = tl.sum(((last <= mid[None, :]) & valid).to(tl.int32), axis=0) >= cand
        hi = tl.where(ge, mid, hi)
        lo = tl.where(ge, lo, mid + 1)
    return hi


@triton.jit
def _counters(miss, novel, t, fc0, fc1, fc2, fct, nc0, nc1, nc2, nct, frac_ptr):
    """Step 1 of a request: a fault is an event of the fault counters, a novel request of the novel ones."""
    fc0 = _event(fc0, fct, t, miss, frac_ptr, 0, 4)
    fc1 = _event(fc1, fct, t, miss, frac_ptr, 16, 7)
    fc2 = _event(fc2, fct, t, miss, frac_ptr, 144, 10)
    nc0 = _event(nc0, nct, t, novel, frac_ptr, 0, 4)
    nc1 = _event(nc1, nct, t, novel, frac_ptr, 16, 7)
    nc2 = _event(nc2, nct, t, novel, frac_ptr, 144, 10)
    return fc0, fc1, fc2, tl.where(miss, t, fct), nc0, nc1, nc2, tl.where(novel, t, nct)


@triton.jit
def _learned_kernel(trace_ptr, k_ptr, w_ptr, frac_ptr, scratch_ptr, ada_ptr, faults_ptr, hits_ptr, victims_ptr,
                    B, T, want_hits, s1, s2, cand, wstep,
                    H1: tl.constexpr, H2: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr,
                    RANK: tl.constexpr):
    """Register tiles.  trace/hits/victims ``[T, B]``; k ``[B]``; w the network (see _score);
    frac the decay fractions; scratch int32 ``[n_ids, 6, B]`` zeros; ada int64 ``[n_ids, 2, B]`` all -1
    (see _detector); cand C, or 0 for all slots.  Barriers separate each step's loads of the requested
    block's state from its stores, and the stores from the next step's loads: a lane's scalars are
    replicated over the two warps, which need not run in step.
    wstep = 0: the weights' address moves by it each step, so the compiler cannot hoist the
    ~1000 weight loads out of the time loop into registers (they would spill)."""
    lanes = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    lmask = lanes < B
    Kl = tl.load(k_ptr + lanes, mask=lmask, other=1).to(tl.int32)
    slot = tl.arange(0, BLOCK_K)[:, None]
    valid = slot < Kl[None, :]
    use_cand = (cand > 0) & (cand < Kl)
    any_cand = tl.max(use_cand.to(tl.int32), axis=0) > 0
    bb = B.to(tl.int64)
    zero = tl.zeros([BLOCK_B], tl.int32)
    n = zero
    faults = zero
    fc0, fc1, fc2, fct, nc0, nc1, nc2, nct = zero, zero, zero, zero, zero, zero, zero, zero
    cur, gen_ep, gen_cd, nextgen, S, resume, t_change = zero, zero, zero + 1, zero + 2, zero, zero, zero
    tile = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    blk = tile - 1
    last, ins, hits, cnt, gap, d0, d1, d2 = tile, tile, tile, tile, tile, tile, tile, tile
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B)
    trace_ptr += lanes
    for t in range(T):
        w_ptr += wstep
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        now = zero + t
        active, eq, hit, miss = _lookup(blk, x)
        bp, novel, dnovel, bc, bg, b0, b1, b2 = _block_read(scratch_ptr, x, active, t, lanes, bb, frac_ptr)
        ep_p, cd_p, ep_v, cd_v, cur, gen_ep, gen_cd, nextgen, S, resume, t_change = _detector(
            ada_ptr, x, active, dnovel, t, lanes, bb, cur, gen_ep, gen_cd, nextgen, S, resume, t_change)
        tl.debug_barrier()
        _block_write(bp, active, t, bb, bc, bg, b0, b1, b2)
        tl.store(ep_p, ep_v, mask=active)
        tl.store(cd_p, cd_v, mask=active)
        fc0, fc1, fc2, fct, nc0, nc1, nc2, nct = _counters(miss, novel, t, fc0, fc1, fc2, fct, nc0, nc1, nc2, nct,
                                                           frac_ptr)
        hits = tl.where(eq, hits + 1, hits)
        last = tl.where(eq, now[None, :], last)
        cnt = tl.where(eq, bc[None, :], cnt)
        gap = tl.where(eq, bg[None, :], gap)
        d0 = tl.where(eq, b0[None, :], d0)
        d1 = tl.where(eq, b1[None, :], d1)
        d2 = tl.where(eq, b2[None, :], d2)
        cold = miss & (n < Kl)
        evict = miss & (n >= Kl)
        s_ev = zero
        if tl.max(evict.to(tl.int32), axis=0) > 0:  # most steps of a warm cache skip the network
            g = _context(now, Kl, fc0, fc1, fc2, fct, nc0, nc1, nc2, nct, S, t_change, frac_ptr)
            f = _features(now[None, :], last, ins, hits, cnt, gap, d0, d1, d2, frac_ptr)
            e = _detector_features(ada_ptr, blk, last, now[None, :], valid, lanes, bb, cur, gen_ep, gen_cd, S)
            key = (_score(f, e, g, w_ptr, s1, s2, H1, H2, False).to(tl.int64) << 32) + last.to(tl.int64)
            ok = valid
            if any_cand:
                if RANK:  # the C least recently accessed: fewer than C valid slots are older (distinct last accesses)
                    older = (last[None, :, :] < last[:, None, :]) & valid[None, :, :]
                    ok = valid & ((tl.sum(older.to(tl.int32), axis=1) < cand) | (use_cand == 0)[None, :])
                else:
                    tau = _threshold(last, valid, cand, now)
                    ok = valid & ((last <= tau[None, :]) | (use_cand == 0)[None, :])
            s_ev = tl.argmin(tl.where(ok, key, _BIG64), axis=0).to(tl.int32)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & miss[None, :]
        victim = tl.where(evict, tl.sum(tl.where(sel, blk, 0), axis=0), -1)
        blk = tl.where(sel, x[None, :], blk)
        last = tl.where(sel, now[None, :], last)
        ins = tl.where(sel, now[None, :], ins)
        hits = tl.where(sel, 0, hits)
        cnt = tl.where(sel, bc[None, :], cnt)
        gap = tl.where(sel, bg[None, :], gap)
        d0 = tl.where(sel, b0[None, :], d0)
        d1 = tl.where(sel, b1[None, :], d1)
        d2 = tl.where(sel, b2[None, :], d2)
        n += cold.to(tl.int32)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
        tl.debug_barrier()
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


@triton.jit
def _learned_chunked_kernel(trace_ptr, k_ptr, w_ptr, frac_ptr, scratch_ptr, ada_ptr, slots_ptr, slot_of_ptr, ctx_ptr,
                            faults_ptr, hits_ptr, victims_ptr, B, T, want_hits, s1, s2, cand, wstep, krow,
                            H1: tl.constexpr, H2: tl.constexpr, CHUNK: tl.constexpr):
    """One lane per program.  As _learned_kernel, plus slots int32 ``[B, 5, krow]`` (block, last
    access, insertion, hits of each slot; then a decision's candidates), slot_of int32 ``[n_ids, B]``
    all -1 and ctx int32 ``[B, H1]`` (a decision's _context_share).  Barriers
    separate each step's loads from its stores: the lane's scalars are replicated over warps."""
    lanes = tl.program_id(0).to(tl.int64) + tl.arange(0, 1)
    Kl = tl.load(k_ptr + lanes).to(tl.int32)
    k_lane = tl.max(Kl, axis=0)
    use_cand = (cand > 0) & (cand < k_lane)
    bb = B.to(tl.int64)
    kr = krow.to(tl.int64)
    zero = tl.zeros([1], tl.int32)
    n = zero
    faults = zero
    fc0, fc1, fc2, fct, nc0, nc1, nc2, nct = zero, zero, zero, zero, zero, zero, zero, zero
    cur, gen_ep, gen_cd, nextgen, S, resume, t_change = zero, zero, zero + 1, zero + 2, zero, zero, zero
    slot = tl.arange(0, CHUNK)[:, None]
    row = slots_ptr + lanes * 5 * kr  # [1]: this lane's block | last | ins | hits | candidates rows
    tile = row[None, :] + slot  # [CHUNK, 1]
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lanes < B, want_hits, 1)
    trace_ptr += lanes
    for t in range(T):
        w_ptr += wstep
        x = tl.load(trace_ptr)
        now = zero + t
        active = x >= 0
        xs = tl.where(active, x, 0).to(tl.int64)
        s_hit = tl.load(slot_of_ptr + xs * bb + lanes, mask=active, other=-1)
        hit = s_hit >= 0
        miss = active & (s_hit < 0)
        evict = miss & (n >= Kl)
        old_hits = tl.load(row + 3 * kr + tl.maximum(s_hit, 0), mask=hit, other=0)
        xp, novel, dnovel, bc, bg, b0, b1, b2 = _block_read(scratch_ptr, x, active, t, lanes, bb, frac_ptr)
        ep_p, cd_p, ep_v, cd_v, cur, gen_ep, gen_cd, nextgen, S, resume, t_change = _detector(
            ada_ptr, x, active, dnovel, t, lanes, bb, cur, gen_ep, gen_cd, nextgen, S, resume, t_change)
        fc0, fc1, fc2, fct, nc0, nc1, nc2, nct = _counters(miss, novel, t, fc0, fc1, fc2, fct, nc0, nc1, nc2, nct,
                                                           frac_ptr)
        s_ev = zero
        if tl.max(evict.to(tl.int32), axis=0) > 0:
            if use_cand:  # binary search for the C-th smallest last access, chunk by chunk
                lo = zero
                hi = now - 1
                for _ in range(30):
                    mid = (lo + hi) >> 1
                    c = zero
                    for c0 in range(0, k_lane, CHUNK):
                        v = (slot + c0) < k_lane
                        lt = tl.load(tile + kr + c0, mask=v, other=0x3FFFFFFF)
                        c += tl.sum((lt <= mid[None, :]).to(tl.int32), axis=0)
                    ge = c >= cand
                    hi = tl.where(ge, mid, hi)
                    lo = tl.where(ge, lo, mid + 1)
                tau = hi
                # gather the C candidates' slot numbers into the lane's fifth row (exactly C: last accesses are
                # distinct), so the network scores C slots, not K
                base = zero
                for c0 in range(0, k_lane, CHUNK):
                    v = (slot + c0) < k_lane
                    m = v & (tl.load(tile + kr + c0, mask=v, other=0x3FFFFFFF) <= tau[None, :])
                    pos = base[None, :] + tl.cumsum(m.to(tl.int32), axis=0) - 1
                    tl.store(row[None, :] + 4 * kr + pos, slot + c0, mask=m)
                    base += tl.sum(m.to(tl.int32), axis=0)
            # the context's share goes through the lane's ctx row: held in registers across the chunk loop
            # it would spill on sm_90; reloaded per chunk (its address moves by wstep, like the weights') it does not
            cptr = ctx_ptr + (lanes * H1)[None, None, :] + tl.arange(0, H1)[:, None, None]
            tl.store(cptr, _context_share(_context(now, Kl, fc0, fc1, fc2, fct, nc0, nc1, nc2, nct, S, t_change,
                                                   frac_ptr), w_ptr, H1))
            tl.debug_barrier()
            best = zero.to(tl.int64) + _BIG64
            n_score = tl.where(use_cand, cand, k_lane)
            for c0 in range(0, n_score, CHUNK):
                w_ptr += wstep  # (see _learned_kernel)
                cptr += wstep
                v = (slot + c0) < n_score
                idx = slot + c0
                if use_cand:
                    idx = tl.load(tile + 4 * kr + c0, mask=v, other=0)
                sp = row[None, :] + idx
                cb = tl.load(sp, mask=v, other=0)
                cl = tl.load(sp + kr, mask=v, other=0)
                bp = scratch_ptr + cb.to(tl.int64) * _NF * bb + lanes[None, :]
                f = _features(now[None, :], cl, tl.load(sp + 2 * kr, mask=v, other=0),
                              tl.load(sp + 3 * kr, mask=v, other=0), tl.load(bp, mask=v, other=0),
                              tl.load(bp + 2 * bb, mask=v, other=0), tl.load(bp + 3 * bb, mask=v, other=0),
                              tl.load(bp + 4 * bb, mask=v, other=0), tl.load(bp + 5 * bb, mask=v, other=0), frac_ptr)
                e = _detector_features(ada_ptr, cb, cl, now[None, :], v, lanes, bb, cur, gen_ep, gen_cd, S)
                key = (_score(f, e, tl.load(cptr), w_ptr, s1, s2, H1, H2, True).to(tl.int64) << 32) + cl.to(tl.int64)
                key = tl.where(v, key, _BIG64)
                kmin = tl.min(key, axis=0)
                smin = tl.min(tl.where(key == kmin[None, :], idx, 0x7FFFFFFF), axis=0)
                s_ev = tl.where(kmin < best, smin, s_ev)
                best = tl.minimum(best, kmin)
        s = tl.where(n < Kl, n, s_ev)
        victim = tl.where(evict, tl.load(row + s, mask=evict, other=-1), -1)
        tl.debug_barrier()  # every warp has read what this step overwrites
        _block_write(xp, active, t, bb, bc, bg, b0, b1, b2)
        tl.store(ep_p, ep_v, mask=active)
        tl.store(cd_p, cd_v, mask=active)
        tl.store(slot_of_ptr + tl.where(evict, victim, 0).to(tl.int64) * bb + lanes, zero - 1, mask=evict)
        tl.store(slot_of_ptr + xs * bb + lanes, s, mask=miss)
        hs = tl.where(miss, s, s_hit)
        tl.store(row + s, x, mask=miss)
        tl.store(row + kr + hs, now, mask=active)
        tl.store(row + 2 * kr + s, now, mask=miss)
        tl.store(row + 3 * kr + hs, tl.where(miss, 0, old_hits + 1), mask=active)
        n += (miss & (n < Kl)).to(tl.int32)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
        tl.debug_barrier()  # this step's stores are visible to every warp's next loads
    tl.store(faults_ptr + lanes, faults.to(tl.int64))


def block_shape(kmax: int):
    """(BLOCK_K, BLOCK_B, num_warps) of the register kernel for the largest per-lane K, or None
    beyond it (the chunked kernel)."""
    for bk in SMALL_BLOCK_K:
        if kmax <= bk:
            return bk, TILE // bk, TILE_WARPS
    return None


def network_buffer(net: _L.LearnedNet, device) -> torch.Tensor:
    """int32 [20 * H1 + H1 + H2 * H1 + 2 * H2]: W1 transposed, b1, W2, b2, w3 (row-major), as _score reads them."""
    parts = [net.W1.T.reshape(-1), net.b1, net.W2.reshape(-1), net.b2, net.w3]
    return torch.from_numpy(np.concatenate(parts).astype(np.int32)).to(device)


def launch(traces_tb: torch.Tensor, K: torch.Tensor, net: _L.LearnedNet, cand: int, n_ids: int, kmax: int,
           return_hits: bool, chunk: int = CHUNK):
    """Launcher on the ``[T, B]`` layout (contiguous int32, ids < n_ids; K int64 [B] <= kmax):
    allocates the scratch, picks the kernel, shape and grid.  Returns (faults int64 [B],
    hits int8 [T, B] | None, victims int32 [T, B] | None).  ``chunk``: slots per tile of the
    chunked kernel (a power of two)."""
    T, B = check_tb(traces_tb)
    if T >= _L.MAX_T:
        raise ValueError(f"the learned triton kernel handles T < 2**30, got {T}")
    if kmax > MAX_K:
        raise ValueError(f"the learned triton kernel handles K <= {MAX_K}, got K={kmax}; use backend='cpu'")
    dev = traces_tb.device
    H1, H2 = net.hidden
    if H1 & (H1 - 1):
        raise ValueError(f"the learned triton kernel needs a power-of-two first hidden width, got {H1}")
    w = network_buffer(net, dev)
    frac = torch.from_numpy(_L.decay_fracs()).to(dev, torch.int32)
    scratch = torch.zeros((n_ids, NF, B), dtype=torch.int32, device=dev)
    ada = torch.full((n_ids, 2, B), -1, dtype=torch.int64, device=dev)
    faults, hits, victims = alloc_outputs(T, B, return_hits, dev)
    shape = block_shape(kmax)
    common = (faults, hits, victims, B, T, int(return_hits), net.s1, net.s2, cand, 0)
    if shape is not None:
        BK, BB, warps = shape
        _learned_kernel[(triton.cdiv(B, BB),)](traces_tb, K, w, frac, scratch, ada, *common, H1=H1, H2=H2,
                                               BLOCK_K=BK, BLOCK_B=BB, RANK=RANK_CANDIDATES, num_warps=warps)
    else:
        slots = torch.zeros((B, 5, kmax), dtype=torch.int32, device=dev)
        slot_of = torch.full((n_ids, B), -1, dtype=torch.int32, device=dev)
        ctx = torch.empty((B, H1), dtype=torch.int32, device=dev)
        _learned_chunked_kernel[(B,)](traces_tb, K, w, frac, scratch, ada, slots, slot_of, ctx, *common, kmax, H1=H1, H2=H2,
                                      CHUNK=chunk, num_warps=CHUNK_WARPS)
    return launch_outputs(faults, hits, victims, return_hits)


def simulate(traces: torch.Tensor, policy, K: torch.Tensor, keys: torch.Tensor, return_hits: bool = False,
             options: dict | None = None) -> KernelResult:
    """``learned`` on the traces' device (the ``Policy.triton`` contract).

    Args:
        traces: integer ``[B, T]`` block ids (-1 pads), CUDA (or CPU under TRITON_INTERPRET=1).
        policy: the ``learned`` :class:`~gpupage.core.policies.Policy`.
        K: int64 ``[B]`` per-lane cache sizes.  keys: int64 ``[B]`` lane keys (unused: deterministic).
        options: ``{"checkpoint": ..., "candidates": C}``, as :func:`gpupage.zoo.learned.simulate_cpu`.
    Returns:
        :class:`~kernels.launch.KernelResult`: faults int64 ``[B]``, hits bool ``[B, T]`` and
        victims int64 ``[B, T]`` (or None).

    Host reads: ``max(K)`` and the largest id (scratch size); ids whose scratch would exceed
    ``SCRATCH_LIMIT`` entries are remapped to 0..n-1 first.
    """
    net, cand = _L.policy_options(options)
    traces, uniq = as_int32_ids(traces)
    B, T = traces.shape
    K = K.to(device=traces.device, dtype=torch.int64).clamp(max=max(T, 1)).contiguous()
    n_ids = max(int(traces.max()) + 1, 1) if traces.numel() else 1
    if n_ids * B * (NF + 4) > SCRATCH_LIMIT:
        traces, u = remap_ids(traces)
        uniq = u if uniq is None else uniq[u.long()]
        n_ids = max(int(u.numel()), 1)
        if n_ids * B * (NF + 4) > SCRATCH_LIMIT:
            raise ValueError(f"{n_ids} distinct ids x {B} lanes exceed the learned kernel's scratch; use backend='cpu'")
    faults, hits, victims = launch(traces.t().contiguous(), K, net, cand, n_ids, int(K.max()), return_hits)
    return kernel_result(faults, hits, victims, uniq)


_SIG = {"trace_ptr": "*i32", "k_ptr": "*i64", "w_ptr": "*i32", "frac_ptr": "*i32", "scratch_ptr": "*i32",
        "ada_ptr": "*i64"}
_TAIL = {"s1": "i32", "s2": "i32", "cand": "i32", "wstep": "i32"}
SHIPPED_HIDDEN = ((32, 16), (32, 32))  # the widths of checkpoints/learned_v1.pt and of the per-K checkpoints
# Every specialisation `simulate` can launch with the shipped widths, for scripts/compile_kernels.py.
AOT_SPECS = [
    aot_spec(f"learned {h1}x{h2} K<={bk}", _learned_kernel, {**_SIG, **OUT_SIG, **_TAIL}, block_shape(bk), H1=h1, H2=h2,
             RANK=RANK_CANDIDATES)
    for h1, h2 in SHIPPED_HIDDEN for bk in SMALL_BLOCK_K
] + [dict(name=f"learned {h1}x{h2} chunked K<={MAX_K}", fn=_learned_chunked_kernel,
          signature={**_SIG, "slots_ptr": "*i32", "slot_of_ptr": "*i32", "ctx_ptr": "*i32", **OUT_SIG, **_TAIL, "krow": "i32"},
          constexprs=dict(H1=h1, H2=h2, CHUNK=CHUNK), num_warps=CHUNK_WARPS) for h1, h2 in SHIPPED_HIDDEN]
