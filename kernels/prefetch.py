"""Prefetching (issue 13) on CUDA: the serving loop of :mod:`gpupage.core.prefetch` with LRU, LFU, FIFO or
``adaptive`` eviction, and the lookahead oracle, bit for bit.

Same layout as :mod:`kernels.heuristics`: a program owns ``BLOCK_B`` lanes (lanes fastest; trace and
targets read as ``[T, B]`` rows) and a ``[BLOCK_K, BLOCK_B]`` register tile per slot field: block id,
last access, and two mode fields (``adaptive``'s epoch and candidate counts, LFU's count, FIFO's insertion
order, the oracle's next use and Zipf rank).  Per-block state that outlives a block's residence lives in
global scratch: last access ``[n_ids, B]`` (a block prefetched after an eviction keeps its old last access
and LFU count: a prefetch is not an access), LFU's counts ``[n_ids, B]`` and ``adaptive``'s epoch and
candidate counters ``[n_ids, 2, B]`` packed as ``generation << 32 | count``.

Each step: the prefetch of ``targets[t]`` when it is not resident (victim chosen with the state after
request t - 1), then request t as in ``kernels.heuristics``.  The victim is the first slot of the smallest
(priority, last access): ties happen here (blocks prefetched and never requested share a last access),
so the first-slot rule is explicit rather than left to ``tl.argmin``.

The oracle keeps each resident block's next use (one sort per lane before the launch,
:func:`kernels.simulate.next_use`), so its victim costs O(K) whatever the window L, and its rank in the
current working set: every block's rank lives in scratch ``[n_ids, B]``, rewritten at each new phase as the
CPU path does, and a slot's is gathered at its insertion and at each new phase.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.zoo import heuristics as _h
from gpupage.zoo.heuristics import resolve_params

from .heuristics import _cusum
from .launch import _lane_tile, _lookup, aot_spec, check_tb, tile_shape
from .simulate import next_use

M_LRU, M_ADAPTIVE, M_LFU, M_FIFO, M_ORACLE = 0, 1, 2, 3, 4
MODES = {"lru": M_LRU, "adaptive": M_ADAPTIVE, "lfu": M_LFU, "fifo": M_FIFO, "oracle": M_ORACLE}
# per mode: adaptive's four slot fields at 32 slots x 32 lanes spill on sm_90, so from K = 17 on it runs one
# lane per program; the oracle's at 16 x 32 spill with Triton 3.6 (the lent GPUs'), so from K = 9 on
SMALL_BLOCK_K = {M_LRU: (8, 16, 32), M_ADAPTIVE: (8, 16), M_LFU: (8, 16, 32), M_FIFO: (8, 16, 32), M_ORACLE: (8,)}
LARGE_BLOCK_K = {m: (16, 32, 64, 128, 256, 512, 1024)[len(small) - 1:] for m, small in SMALL_BLOCK_K.items()}
PROTECT = tl.constexpr(_h.PROTECT)
FAR_PAST = -(1 << 30)  # last access of a never-requested block (int32); T < 2**29
NEVER = tl.constexpr(1 << 30)  # gpupage.core.prefetch.NEVER: the next use of a block never requested again
INT64_MAX = tl.constexpr(0x7FFFFFFFFFFFFFFF)


@triton.jit
def _victim(t, s_last, s_a, s_b, S, valid_slot, slot, stale, suspect, L, W,
            MODE: tl.constexpr, BLOCK_K: tl.constexpr):
    """[BB]: the first slot of the smallest (priority, last access) per lane (FIFO: of the smallest order)."""
    if MODE == 0:
        key = s_last.to(tl.int64)
    elif MODE == 1:
        p = tl.where(s_last >= t - stale, s_a, 0).to(tl.int64)
        p = p + tl.where((S >= suspect)[None, :] & (s_b > 0), PROTECT, 0).to(tl.int64)
        key = (p << 32) + s_last.to(tl.int64)
    elif MODE == 2:
        key = (s_a.to(tl.int64) << 32) + s_last.to(tl.int64)
    elif MODE == 3:
        key = s_a.to(tl.int64)
    else:  # _oracle_victim: not needed in the window first, by rank; then farthest next use first
        p = tl.where(s_a >= t + L, W - s_b, W + 1 + NEVER - s_a).to(tl.int64)
        key = (p << 32) + s_last.to(tl.int64)
    key = tl.where(valid_slot, key, INT64_MAX)
    best = tl.min(key, axis=0)
    return tl.min(tl.where(key == best[None, :], slot, BLOCK_K), axis=0).to(tl.int32)


@triton.jit
def _counts(scratch_ptr, xs, cur, gen_ep, gen_cd, mask, bb, lanes):
    """(pointers, stored values, current counts) of a block's epoch and candidate counters."""
    ep_p = scratch_ptr + (xs * 2 + cur) * bb + lanes
    cd_p = scratch_ptr + (xs * 2 + 1 - cur) * bb + lanes
    ev = tl.load(ep_p, mask=mask, other=-1)
    cv = tl.load(cd_p, mask=mask, other=-1)
    ep = tl.where((ev >> 32) == gen_ep, ev & 0xFFFFFFFF, 0).to(tl.int32)
    cd = tl.where((cv >> 32) == gen_cd, cv & 0xFFFFFFFF, 0).to(tl.int32)
    return ep_p, cd_p, ep, cd


@triton.jit
def _prefetch_kernel(trace_ptr, target_ptr, k_ptr, scratch_ptr, last_ptr, nxt_ptr, ws_ptr, out_ptr,
                     B, T, novel_gap, gain, decay, alarm, refractory, stale, suspect, L, W, shift,
                     MODE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace/target int32 ``[T, B]`` (-1: pad / no prefetch); last int32 ``[n_ids, B]`` (all FAR_PAST; unread
    by FIFO); scratch int64 ``[n_ids, 2, B]`` (all -1) for adaptive, the counts ``[n_ids, B]`` (all 0) for
    LFU, the ranks ``[n_ids, B]`` (all W) for the oracle; the oracle's next uses nxt int32 ``[T, B]`` and
    working sets ws int32 ``[phases, W, B]`` of ``shift`` requests each; out int64 ``[3, B]``: faults,
    prefetches, evictions.

    Slot fields besides the block and its last access: ``s_a``, ``s_b`` = adaptive's epoch and candidate
    counts, LFU's count, FIFO's insertion order (2t for a prefetch before t, 2t + 1 for a fault at t), the
    oracle's next use and Zipf rank."""
    lanes, lmask, Kl, slot, valid_slot = _lane_tile(k_ptr, B, BLOCK_K, BLOCK_B)
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    s_last = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    s_a = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    s_b = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    zero = tl.zeros([BLOCK_B], tl.int32)
    n = zero
    faults = zero
    prefetches = zero
    evictions = zero
    cur = zero
    gen_ep = zero
    gen_cd = zero + 1
    nextgen = zero + 2
    S = zero
    resume = zero
    bb = B.to(tl.int64)
    trace_ptr += lanes
    target_ptr += lanes
    nxt_ptr += lanes
    row = ws_ptr
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        y = tl.load(target_ptr, mask=lmask, other=-1)
        if MODE == 4:
            # a new phase: its ranks into the scratch as the CPU path writes them, then the slots' ranks
            if (t % shift == 0) & (W > 0):
                if t > 0:
                    for r in range(W):
                        w = tl.load(row + r * bb + lanes, mask=lmask, other=0).to(tl.int64)
                        tl.store(scratch_ptr + w * bb + lanes, (zero + W).to(tl.int64), mask=lmask)
                row = ws_ptr + (t // shift).to(tl.int64) * W * bb
                for r in range(W):
                    w = tl.load(row + r * bb + lanes, mask=lmask, other=0).to(tl.int64)
                    tl.store(scratch_ptr + w * bb + lanes, (zero + r).to(tl.int64), mask=lmask)
                tl.debug_barrier()  # the stores above before the gathers, across the program's threads
                s_b = tl.load(scratch_ptr + tl.maximum(blk, 0).to(tl.int64) * bb + lanes[None, :],
                              mask=blk >= 0, other=W).to(tl.int32)
        # the prefetch, before request t (none at a pad)
        _, _, y_hit, y_miss = _lookup(blk, y)
        pre = y_miss & (x >= 0)
        ys = tl.where(pre, y, 0).to(tl.int64)
        if MODE != 3:
            last_y = tl.load(last_ptr + ys * bb + lanes, mask=pre, other=0)
        if MODE == 1:
            _, _, a_y, b_y = _counts(scratch_ptr, ys, cur, gen_ep, gen_cd, pre, bb, lanes)
        elif MODE == 2:
            a_y = tl.load(scratch_ptr + ys * bb + lanes, mask=pre, other=0).to(tl.int32)
            b_y = zero
        elif MODE == 3:
            last_y = zero
            a_y = zero + 2 * t
            b_y = zero
        elif MODE == 4:
            a_y = tl.where(y == x, t, NEVER)  # always r_t: the oracle's targets
            b_y = tl.load(scratch_ptr + ys * bb + lanes, mask=pre, other=W).to(tl.int32)
        s_ev = _victim(t, s_last, s_a, s_b, S, valid_slot, slot, stale, suspect, L, W, MODE, BLOCK_K)
        cold = pre & (n < Kl)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & pre[None, :]
        blk = tl.where(sel, y[None, :], blk)
        s_last = tl.where(sel, last_y[None, :], s_last)
        if MODE != 0:
            s_a = tl.where(sel, a_y[None, :], s_a)
            s_b = tl.where(sel, b_y[None, :], s_b)
        n = n + cold.to(tl.int32)
        prefetches += pre.to(tl.int32)
        evictions += (pre & (cold == 0)).to(tl.int32)
        # request t
        active, eq, hit, miss = _lookup(blk, x)
        xs = tl.where(active, x, 0).to(tl.int64)
        lp = last_ptr + xs * bb + lanes
        if MODE == 1:
            last_x = tl.load(lp, mask=active, other=0)
        if MODE != 3:
            tl.store(lp, zero + t, mask=active)
        s_last = tl.where(eq, t, s_last)
        if MODE == 1:
            ep_p, cd_p, a_x, b_x = _counts(scratch_ptr, xs, cur, gen_ep, gen_cd, active, bb, lanes)
            a_x += 1
            b_x += 1
            tl.store(ep_p, (gen_ep.to(tl.int64) << 32) | a_x.to(tl.int64), mask=active)
            tl.store(cd_p, (gen_cd.to(tl.int64) << 32) | b_x.to(tl.int64), mask=active)
            s_a = tl.where(eq, a_x[None, :], s_a)
            s_b = tl.where(eq, b_x[None, :], s_b)
            novel = last_x <= t - novel_gap
            S, cur, gen_ep, gen_cd, nextgen, resume, s_a, s_b, a_x, b_x = _cusum(
                t, novel, active, S, cur, gen_ep, gen_cd, nextgen, resume, s_a, s_b, a_x, b_x,
                gain, decay, alarm, refractory)
        elif MODE == 2:
            cp = scratch_ptr + xs * bb + lanes
            a_x = (tl.load(cp, mask=active, other=0) + 1).to(tl.int32)
            tl.store(cp, a_x.to(tl.int64), mask=active)
            s_a = tl.where(eq, a_x[None, :], s_a)
            b_x = zero
        elif MODE == 3:
            a_x = zero + 2 * t + 1
            b_x = zero
        elif MODE == 4:
            a_x = tl.load(nxt_ptr, mask=active, other=NEVER)
            s_a = tl.where(eq, a_x[None, :], s_a)
            b_x = tl.load(scratch_ptr + xs * bb + lanes, mask=miss, other=W).to(tl.int32)
        s_ev = _victim(t, s_last, s_a, s_b, S, valid_slot, slot, stale, suspect, L, W, MODE, BLOCK_K)
        cold = miss & (n < Kl)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & miss[None, :]
        blk = tl.where(sel, x[None, :], blk)
        s_last = tl.where(sel, t, s_last)
        if MODE != 0:
            s_a = tl.where(sel, a_x[None, :], s_a)
            s_b = tl.where(sel, b_x[None, :], s_b)
        n = n + cold.to(tl.int32)
        faults += miss.to(tl.int32)
        evictions += (miss & (cold == 0)).to(tl.int32)
        trace_ptr += B
        target_ptr += B
        nxt_ptr += B
    tl.store(out_ptr + lanes, faults.to(tl.int64), mask=lmask)
    tl.store(out_ptr + bb + lanes, prefetches.to(tl.int64), mask=lmask)
    tl.store(out_ptr + 2 * bb + lanes, evictions.to(tl.int64), mask=lmask)


def block_shape(kmax: int, mode: int):
    """(BLOCK_K, BLOCK_B, num_warps) for the largest per-lane K of a launch in ``mode``."""
    return tile_shape(kmax, SMALL_BLOCK_K[mode], LARGE_BLOCK_K[mode], 64, 8, "the prefetch triton kernel handles")


def launch_prefetch(traces_tb: torch.Tensor, targets_tb: torch.Tensor, K: torch.Tensor, n_ids: int, kmax: int,
                    mode: int, prm: tuple, L: int = 0, ws_tb: torch.Tensor | None = None,
                    shift: int = 1) -> torch.Tensor:
    """Launcher on the ``[T, B]`` layout (contiguous int32, ids < n_ids): validates, allocates the scratch
    (the oracle's next uses too), picks the shape and grid.  ``ws_tb``: the oracle's working sets, contiguous
    int32 ``[phases, W, B]`` of ``shift`` requests each (None: no ranks).  Returns int64 ``[3, B]``: faults,
    prefetches, evictions."""
    T, B = check_tb(traces_tb)
    if check_tb(targets_tb) != (T, B):
        raise ValueError(f"targets_tb must be [T, B] = {(T, B)}, got {tuple(targets_tb.shape)}")
    if T >= 1 << 29:
        raise ValueError(f"the prefetch triton kernel handles T < 2**29, got {T}")
    dev = traces_tb.device
    if ws_tb is None or mode != M_ORACLE:
        ws_tb = torch.zeros((1, 0, B), dtype=torch.int32, device=dev)
    P, W = ws_tb.shape[:2]
    if (ws_tb.dtype != torch.int32 or not ws_tb.is_contiguous() or ws_tb.dim() != 3 or ws_tb.shape[2] != B
            or (W and P * shift < T) or W >= 1 << 29 or shift < 1):
        raise ValueError(f"the oracle's working sets must be int32 [phases, W < 2**29, B = {B}] covering T = {T} "
                         f"requests at shift {shift}, got {tuple(ws_tb.shape)}")
    BK, BB, warps = block_shape(kmax, mode)
    last = torch.full((n_ids if mode != M_FIFO else 1, B), FAR_PAST, dtype=torch.int32, device=dev)
    if mode == M_ADAPTIVE:
        scratch = torch.full((n_ids, 2, B), -1, dtype=torch.int64, device=dev)
    elif mode == M_ORACLE:  # ranks: W outside the working set; ids of the working sets included
        n_ids = max(n_ids, int(ws_tb.max()) + 1 if ws_tb.numel() else 0)
        scratch = torch.full((n_ids, B), W, dtype=torch.int64, device=dev)
    else:
        scratch = torch.zeros((n_ids if mode == M_LFU else 1, B), dtype=torch.int64, device=dev)
    if mode == M_ORACLE:
        nu = next_use(traces_tb.t())
        nxt = torch.where(nu >= 0, nu, NEVER.value).to(torch.int32).t().contiguous()
    else:
        nxt = torch.zeros((1, B), dtype=torch.int32, device=dev)
    out = torch.empty((3, B), dtype=torch.int64, device=dev)
    _prefetch_kernel[(triton.cdiv(B, BB),)](traces_tb, targets_tb, K, scratch, last, nxt, ws_tb, out, B, T, *prm,
                                            L, W, shift, MODE=mode, BLOCK_K=BK, BLOCK_B=BB, num_warps=warps)
    return out


def serve(traces: torch.Tensor, targets: torch.Tensor, K: torch.Tensor, eviction: str,
          options: dict | None = None, L: int = 0, ws: torch.Tensor | None = None, shift: int = 1) -> torch.Tensor:
    """Serve B lanes with their prefetch targets on the traces' device; the CPU path's exact counts.

    Args:
        traces: integer ``[B, T]`` dense block ids (-1 pads), CUDA (or CPU under TRITON_INTERPRET=1).
        targets: integer ``[B, T]``: the block prefetched right before request t, -1 for none
            (:func:`gpupage.core.prefetch.full_targets`).
        K: int64 ``[B]`` cache sizes.  eviction: ``lru``, ``lfu``, ``fifo``, ``adaptive`` (``options``: its
            constants) or ``oracle``, the lookahead oracle's own rule (its targets are the trace itself, or none
            for L = 0): window ``L``, Zipf ranks from ``ws`` integer ``[B, phases, W]`` of ``shift`` requests
            (a :class:`~gpupage.core.traces.ZipfLatent`; None: blocks outside the window go in LRU order).
    Returns:
        int64 ``[B, 3]``: faults, prefetches, evictions.  Host reads: ``max(K)`` and the largest id (the
        working sets' too).
    """
    if eviction not in MODES:
        raise ValueError(f"the prefetch kernel evicts with {', '.join(MODES)}, got {eviction!r}")
    prm = resolve_params(options if eviction == "adaptive" else None)
    B, T = traces.shape
    K = K.to(device=traces.device, dtype=torch.int64).clamp(max=max(T, 1)).contiguous()
    n_ids = max(int(traces.max()), int(targets.max()), 0) + 1 if traces.numel() else 1
    if n_ids >= 1 << 31:
        raise ValueError(f"the prefetch kernel takes dense ids below 2**31, got {n_ids - 1}")
    ws_tb = None
    if ws is not None:
        if ws.dim() != 3 or ws.shape[0] != B:
            raise ValueError(f"the oracle's working sets must be [B = {B}, phases, W], got {tuple(ws.shape)}")
        ws_tb = ws.to(device=traces.device, dtype=torch.int32).permute(1, 2, 0).contiguous()
    out = launch_prefetch(traces.to(torch.int32).t().contiguous(), targets.to(torch.int32).t().contiguous(), K,
                          n_ids, int(K.max()), MODES[eviction], prm, int(L), ws_tb, int(shift))
    return out.t().contiguous()


_SIG = {"trace_ptr": "*i32", "target_ptr": "*i32", "k_ptr": "*i64", "scratch_ptr": "*i64", "last_ptr": "*i32",
        "nxt_ptr": "*i32", "ws_ptr": "*i32", "out_ptr": "*i64", "B": "i32", "T": "i32", "novel_gap": "i32",
        "gain": "i32", "decay": "i32", "alarm": "i32", "refractory": "i32", "stale": "i32", "suspect": "i32",
        "L": "i32", "W": "i32", "shift": "i32"}
# Every specialisation `serve` can launch, for scripts/compile_kernels.py.
AOT_SPECS = [aot_spec(f"prefetch {name} K<={bk}", _prefetch_kernel, _SIG, block_shape(bk, mode), MODE=mode)
             for name, mode in MODES.items() for bk in SMALL_BLOCK_K[mode] + LARGE_BLOCK_K[mode]]
