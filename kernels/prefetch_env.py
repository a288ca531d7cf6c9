"""The prefetch environment's step on CUDA (issue 13, env v2): advance every lane to its next decision.

Serving is :mod:`kernels.prefetch`'s with ``adaptive`` eviction (its ``_victim``, ``_counts`` and
``_cusum``, its ``[BLOCK_K, BLOCK_B]`` slot tiles: block, last access, epoch and candidate counts), but the
state outlives a launch: the tiles ``[4, K, B]``, the per-lane clock and counts ``[NST, B]`` and the per-block
scratch (last access ``[n_ids, B]``, counters ``[n_ids, 2, B]`` packed ``generation << 32 | count``) stay on
the device, so a rollout never syncs with the host.  A launch applies each lane's action to its pending
decision, then serves requests until the lane's next decision (kind 0: prefetch the hinted block h_{t-L}
before request t; kind 1: the victim of a fault on a full cache) or its trace's end, and writes the integer
raw observations of the decision (``obs_global [B, NG]``, ``obs_slots [B, K, NS]``) and the counts accrued
(faults, prefetches, evictions).  Actions are range-checked on the device by ``_check_actions_kernel`` (a
sticky per-lane flag that :meth:`PrefetchEnvState.check` turns into the ValueError at the caller's next host
read).  The written specification is the module docstring of :mod:`gpupage.controller.prefetch_env`;
:func:`naive_prefetch_env_step` is a plain-Python reading of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from gpupage.zoo import heuristics as _h
from gpupage.zoo.heuristics import NaiveAdaptive, resolve_params

from .heuristics import _cusum
from .launch import _lookup, aot_spec, tile_shape
from .prefetch import FAR_PAST, _counts, _victim

NG_BLACK, NG_WHITE, NS = 12, 14, 4
# one warp runs 32 lanes up to 8 slots and 128 // BLOCK_K lanes up to 32 (a [16, 16] tile used all 255
# registers and spilled 24 bytes on sm_80), beyond that a program runs one lane
SMALL_BLOCK_K = (8, 16, 32)
LARGE_BLOCK_K = (64, 128, 256, 512, 1024)
# per-lane state, rows of st int32 [NST, B] (the kernel names them by number, in this order); pend: the
# pending decision's kind, -1 none; right/total/rel_ema/fault_ema as the spec; faults/prefetches/evictions so far;
# bad: an out-of-range action was given (checked at the next host read, see PrefetchEnvState.check)
ROWS = ("t", "pend", "done", "n", "cur", "gen_ep", "gen_cd", "nextgen", "S", "resume", "right", "total", "rel_ema",
        "fault_ema", "faults", "prefetches", "evictions", "bad")
NST = len(ROWS)
REL_START = 1 << 15  # rel_ema starts at one half
KFAR = tl.constexpr(FAR_PAST)
KNS = tl.constexpr(NS)
CHECK_BLOCK = 256
FAR_OUT = tl.constexpr(_h.FAR_PAST)  # the spec's FAR_PAST (int64) in observations; the kernel keeps FAR_PAST (int32)


@triton.jit
def _row(ptr, r, B, lanes, m):
    return tl.load(ptr + r * B + lanes, mask=m, other=0)


@triton.jit
def _far(v):
    """Observations carry the spec's FAR_PAST (int64) for a never-requested block."""
    return tl.where(v == KFAR, FAR_OUT, v.to(tl.int64))


@triton.jit
def _check_actions_kernel(pf_ptr, vic_ptr, st_ptr, B, K, BLOCK: tl.constexpr):
    """Sets the sticky ``bad`` row of st for each lane given an out-of-range action (a launch of its own: the
    four comparisons in the step kernel made ptxas spill)."""
    lanes = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    lm = lanes < B
    pf = tl.load(pf_ptr + lanes, mask=lm, other=0)
    vic = tl.load(vic_ptr + lanes, mask=lm, other=0)
    bad = lm & ((pf < -1) | (pf > 1) | (vic < -1) | (vic >= K))
    tl.store(st_ptr + 17 * B.to(tl.int64) + lanes, bad.to(tl.int32), mask=bad)


@triton.jit
def _prefetch_env_kernel(trace_ptr, hint_ptr, pf_ptr, vic_ptr, st_ptr, tile_ptr, last_ptr, scratch_ptr, ws_ptr,
                         og_ptr, os_ptr, acc_ptr,
                         B, T, K, L, P, W, shift, novel_gap, gain, decay, alarm, refractory, stale, suspect,
                         NG: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace/hint int32 ``[T, B]``; pf/vic int64 ``[B]``; st int32 ``[NST, B]``; tile int32 ``[4, K, B]``;
    last int32 ``[n_ids, B]``; scratch int64 ``[n_ids, 2, B]``; ws int32 ``[B, P, W]`` (white-box);
    og int64 ``[B, NG]``, os int64 ``[B, K, NS]``, acc int64 ``[B, 3]`` (out)."""
    lanes = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    lm = lanes < B
    bb = B.to(tl.int64)
    slot = tl.arange(0, BLOCK_K)[:, None]
    valid_slot = (slot < K) & lm[None, :]
    to = slot.to(tl.int64) * bb + lanes[None, :]
    kb = K.to(tl.int64) * bb
    blk = tl.load(tile_ptr + to, mask=valid_slot, other=-1)
    s_last = tl.load(tile_ptr + kb + to, mask=valid_slot, other=0)
    s_ep = tl.load(tile_ptr + 2 * kb + to, mask=valid_slot, other=0)
    s_cd = tl.load(tile_ptr + 3 * kb + to, mask=valid_slot, other=0)
    t = _row(st_ptr, 0, bb, lanes, lm)
    pend = _row(st_ptr, 1, bb, lanes, lm)
    done = _row(st_ptr, 2, bb, lanes, lm)
    n = _row(st_ptr, 3, bb, lanes, lm)
    cur = _row(st_ptr, 4, bb, lanes, lm)
    gen_ep = _row(st_ptr, 5, bb, lanes, lm)
    gen_cd = _row(st_ptr, 6, bb, lanes, lm)
    nextgen = _row(st_ptr, 7, bb, lanes, lm)
    S = _row(st_ptr, 8, bb, lanes, lm)
    resume = _row(st_ptr, 9, bb, lanes, lm)
    right = _row(st_ptr, 10, bb, lanes, lm)
    total = _row(st_ptr, 11, bb, lanes, lm)
    rel = _row(st_ptr, 12, bb, lanes, lm)
    fema = _row(st_ptr, 13, bb, lanes, lm)
    faults = _row(st_ptr, 14, bb, lanes, lm)
    pref = _row(st_ptr, 15, bb, lanes, lm)
    evic = _row(st_ptr, 16, bb, lanes, lm)
    f0 = faults
    p0 = pref
    e0 = evic
    pf = tl.load(pf_ptr + lanes, mask=lm, other=-1)
    vic = tl.load(vic_ptr + lanes, mask=lm, other=-1)
    run = lm & (done == 0) & (pf >= 0)

    # the pending decision: kind 0 prefetches h_{t-L} (if asked), kind 1 places r_t in the chosen slot
    d0 = run & (pend == 0)
    d1 = run & (pend == 1)
    tt = t.to(tl.int64) * bb + lanes
    x = tl.load(trace_ptr + tt, mask=d1, other=0)
    y = tl.load(hint_ptr + tt - L * bb, mask=d0, other=0)
    pre = d0 & (pf == 1)
    z = tl.where(pre, y, x)
    zs = z.to(tl.int64)
    last_z = tl.load(last_ptr + zs * bb + lanes, mask=pre, other=0)
    _zp, _zc, ep_z, cd_z = _counts(scratch_ptr, zs, cur, gen_ep, gen_cd, pre | d1, bb, lanes)
    s_ad = _victim(t, s_last, s_ep, s_cd, S, valid_slot, slot, stale, suspect, 0, 0, 1, BLOCK_K)
    place = pre | d1
    cold = place & (n < K)
    s = tl.where(cold, n, tl.where((vic >= 0) & (vic < K), vic.to(tl.int32), s_ad))
    sel = (slot == s[None, :]) & place[None, :]
    blk = tl.where(sel, z[None, :], blk)
    s_last = tl.where(sel, tl.where(pre, last_z, t)[None, :], s_last)
    s_ep = tl.where(sel, ep_z[None, :], s_ep)
    s_cd = tl.where(sel, cd_z[None, :], s_cd)
    n = n + cold.to(tl.int32)
    pref = pref + pre.to(tl.int32)
    evic = evic + (place & (cold == 0)).to(tl.int32)
    t = t + d1.to(tl.int32)
    stage = d0  # request t's prefetch is decided: serve it without asking again
    pend = tl.where(run, -1, pend)

    # serve requests until each lane's next decision
    prev = tl.zeros([BLOCK_B], tl.int32) + KFAR  # a kind-1 subject's last access before its request
    active = run & (t < T)
    while tl.max(active.to(tl.int32), axis=0) > 0:
        tt = t.to(tl.int64) * bb + lanes
        x = tl.load(trace_ptr + tt, mask=active, other=-1)
        y = tl.load(hint_ptr + tt - L * bb, mask=active & (t >= L), other=-1)
        real = active & (x >= 0)
        y_act, y_eq, y_hit, y_miss = _lookup(blk, y)
        ask0 = real & (stage == 0) & y_miss
        serve = real & (ask0 == 0)
        scored = serve & (y >= 0)
        h = (scored & (y == x)).to(tl.int32)
        right += h
        total += scored.to(tl.int32)
        rel = tl.where(scored, rel + (((h << 16) - rel) >> 5), rel)
        # request t: adaptive's access (kernels.prefetch), then hit, cold fill or decision
        xa = tl.where(serve, x, -1)
        x_act, eq, hit, miss = _lookup(blk, xa)
        xs = tl.where(serve, x, 0).to(tl.int64)
        lp = last_ptr + xs * bb + lanes
        last_x = tl.load(lp, mask=serve, other=0)
        tl.store(lp, t, mask=serve)
        s_last = tl.where(eq, t[None, :], s_last)
        ep_p, cd_p, ep_x, cd_x = _counts(scratch_ptr, xs, cur, gen_ep, gen_cd, serve, bb, lanes)
        ep_x += 1
        cd_x += 1
        tl.store(ep_p, (gen_ep.to(tl.int64) << 32) | ep_x.to(tl.int64), mask=serve)
        tl.store(cd_p, (gen_cd.to(tl.int64) << 32) | cd_x.to(tl.int64), mask=serve)
        s_ep = tl.where(eq, ep_x[None, :], s_ep)
        s_cd = tl.where(eq, cd_x[None, :], s_cd)
        novel = last_x <= t - novel_gap
        S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x = _cusum(
            t, novel, serve, S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x,
            gain, decay, alarm, refractory)
        faults += miss.to(tl.int32)
        cold = miss & (n < K)
        ask1 = miss & (n >= K)
        sel = (slot == n[None, :]) & cold[None, :]
        blk = tl.where(sel, x[None, :], blk)
        s_last = tl.where(sel, t[None, :], s_last)
        s_ep = tl.where(sel, ep_x[None, :], s_ep)
        s_cd = tl.where(sel, cd_x[None, :], s_cd)
        n = n + cold.to(tl.int32)
        prev = tl.where(ask1, last_x, prev)
        fema = tl.where(serve, fema + (((miss.to(tl.int32) << 16) - fema) >> 6), fema)  # before a kind-1 pause
        go = (active & (x < 0)) | (serve & (ask1 == 0))
        t = t + go.to(tl.int32)
        stage = stage & (go == 0)
        pend = tl.where(ask0, 0, tl.where(ask1, 1, pend))
        active = go & (t < T)
    done = tl.where(run & (t >= T), 1, done)

    # the observation of each new decision
    dec = run & (pend >= 0)
    k0 = pend == 0
    tt = t.to(tl.int64) * bb + lanes
    xo = tl.load(trace_ptr + tt, mask=dec & (k0 == 0), other=0)
    yo = tl.load(hint_ptr + tt - L * bb, mask=dec & k0, other=0)
    subj = tl.where(k0, yo, xo)
    ss = subj.to(tl.int64)
    sl = tl.where(k0, tl.load(last_ptr + ss * bb + lanes, mask=dec & k0, other=0), prev)
    _sp, _sc, ep_s, _sd = _counts(scratch_ptr, ss, cur, gen_ep, gen_cd, dec, bb, lanes)
    again = tl.zeros([BLOCK_B], tl.int32)
    ann = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    for j in range(1, L):
        hm = dec & (t >= j)
        hj = tl.load(hint_ptr + tt - j * bb, mask=hm, other=-1)
        again += (hm & (hj == subj)).to(tl.int32)
        ann += ((blk == hj[None, :]) & hm[None, :]).to(tl.int32)
    full = n >= K
    s_ad = _victim(t, s_last, s_ep, s_cd, S, valid_slot, slot, stale, suspect, 0, 0, 1, BLOCK_K)
    go_ptr = og_ptr + lanes * NG
    tl.store(go_ptr + 0, pend.to(tl.int64), mask=dec)
    tl.store(go_ptr + 1, t.to(tl.int64), mask=dec)
    tl.store(go_ptr + 2, right.to(tl.int64), mask=dec)
    tl.store(go_ptr + 3, total.to(tl.int64), mask=dec)
    tl.store(go_ptr + 4, rel.to(tl.int64), mask=dec)
    tl.store(go_ptr + 5, fema.to(tl.int64), mask=dec)
    tl.store(go_ptr + 6, full.to(tl.int64), mask=dec)
    tl.store(go_ptr + 7, _far(sl), mask=dec)
    tl.store(go_ptr + 8, ep_s.to(tl.int64), mask=dec)
    tl.store(go_ptr + 9, again.to(tl.int64), mask=dec)
    tl.store(go_ptr + 10, tl.where(full, s_ad, -1).to(tl.int64), mask=dec)
    tl.store(go_ptr + 11, tl.zeros([BLOCK_B], tl.int64) + L, mask=dec)
    if NG > 12:  # white-box: the subject's rank in the working set of t's phase (W if not in it)
        ph = tl.minimum(t // shift, P - 1).to(tl.int64)
        wrow = ws_ptr + (lanes * P + ph) * W
        rank = tl.zeros([BLOCK_B], tl.int32) + W
        for r in range(W):
            w = tl.load(wrow + r, mask=dec, other=-1)
            rank = tl.where((w == subj) & (rank == W), r, rank)
        tl.store(go_ptr + 12, (rank < W).to(tl.int64), mask=dec)
        tl.store(go_ptr + 13, rank.to(tl.int64), mask=dec)
    filled = (slot < n[None, :]) & dec[None, :]
    so_ptr = os_ptr + (lanes[None, :] * K + slot) * KNS
    sm = valid_slot & dec[None, :]
    tl.store(so_ptr, tl.where(filled, _far(s_last), 0), mask=sm)
    tl.store(so_ptr + 1, tl.where(filled & (s_last >= (t - stale)[None, :]), s_ep, 0).to(tl.int64), mask=sm)
    tl.store(so_ptr + 2, (filled & (S >= suspect)[None, :] & (s_cd > 0)).to(tl.int64), mask=sm)
    tl.store(so_ptr + 3, tl.where(filled, ann, 0).to(tl.int64), mask=sm)

    tl.store(tile_ptr + to, blk, mask=valid_slot)
    tl.store(tile_ptr + kb + to, s_last, mask=valid_slot)
    tl.store(tile_ptr + 2 * kb + to, s_ep, mask=valid_slot)
    tl.store(tile_ptr + 3 * kb + to, s_cd, mask=valid_slot)
    tl.store(st_ptr + 0 * bb + lanes, t, mask=lm)
    tl.store(st_ptr + 1 * bb + lanes, pend, mask=lm)
    tl.store(st_ptr + 2 * bb + lanes, done, mask=lm)
    tl.store(st_ptr + 3 * bb + lanes, n, mask=lm)
    tl.store(st_ptr + 4 * bb + lanes, cur, mask=lm)
    tl.store(st_ptr + 5 * bb + lanes, gen_ep, mask=lm)
    tl.store(st_ptr + 6 * bb + lanes, gen_cd, mask=lm)
    tl.store(st_ptr + 7 * bb + lanes, nextgen, mask=lm)
    tl.store(st_ptr + 8 * bb + lanes, S, mask=lm)
    tl.store(st_ptr + 9 * bb + lanes, resume, mask=lm)
    tl.store(st_ptr + 10 * bb + lanes, right, mask=lm)
    tl.store(st_ptr + 11 * bb + lanes, total, mask=lm)
    tl.store(st_ptr + 12 * bb + lanes, rel, mask=lm)
    tl.store(st_ptr + 13 * bb + lanes, fema, mask=lm)
    tl.store(st_ptr + 14 * bb + lanes, faults, mask=lm)
    tl.store(st_ptr + 15 * bb + lanes, pref, mask=lm)
    tl.store(st_ptr + 16 * bb + lanes, evic, mask=lm)
    tl.store(acc_ptr + lanes * 3, (faults - f0).to(tl.int64), mask=lm)
    tl.store(acc_ptr + lanes * 3 + 1, (pref - p0).to(tl.int64), mask=lm)
    tl.store(acc_ptr + lanes * 3 + 2, (evic - e0).to(tl.int64), mask=lm)


@dataclass
class PrefetchEnvState:
    """Every lane's state on one device (CUDA, or CPU under TRITON_INTERPRET=1); see the module docstring."""
    traces: torch.Tensor
    """int32 [T, B] block ids, -1 pads."""
    hints: torch.Tensor
    """int32 [T, B]: h_t (-1: none)."""
    working_sets: torch.Tensor
    """int32 [B, P, W]: the latent working set of each phase of ``shift`` requests (white-box), or [1, 1, 0]."""
    shift: int
    L: int
    K: int
    prm: tuple
    """``adaptive``'s seven constants."""
    st: torch.Tensor
    """int32 [NST, B]: the per-lane rows ``ROWS``."""
    tile: torch.Tensor
    """int32 [4, K, B]: per slot its block (-1: empty), last access, epoch and candidate counts."""
    last: torch.Tensor
    """int32 [n_ids, B]: each block's last request (FAR_PAST: never)."""
    scratch: torch.Tensor
    """int64 [n_ids, 2, B]: the two counter arrays, ``generation << 32 | count`` (-1: never stamped)."""
    obs_global: torch.Tensor
    """int64 [B, NG]: the raw observation of each lane's latest decision."""
    obs_slots: torch.Tensor
    """int64 [B, K, NS]"""
    acc: torch.Tensor
    """int64 [B, 3]: faults, prefetches, evictions accrued by the latest step."""

    @property
    def done(self) -> torch.Tensor:
        return self.st[ROWS.index("done")] != 0

    def check(self) -> None:
        """The one-line ValueError for an out-of-range action given to any step so far on the device (a host
        read: callers run it where they sync anyway, e.g. when reading ``done``)."""
        if bool(self.st[ROWS.index("bad")].any()):
            raise ValueError(f"an action was out of range: prefetch must be -1, 0 or 1 and victim in [-1, {self.K})")


def new_state(traces: torch.Tensor, hints: torch.Tensor, L: int, K: int, working_sets: torch.Tensor | None = None,
              shift: int = 1, options: dict | None = None) -> PrefetchEnvState:
    """Fresh lanes on the traces' device: ``traces``/``hints`` int ``[B, T]``; ``working_sets`` int ``[B, P, W]``
    turns the white-box columns on.  Host reads: the largest id (the scratch's size).  The first
    :func:`prefetch_env_step` (any action >= 0) serves each lane up to its first decision."""
    if traces.dim() != 2 or hints.shape != traces.shape:
        raise ValueError(f"traces and hints must both be [B, T], got {tuple(traces.shape)} and {tuple(hints.shape)}")
    B, T = traces.shape
    if T >= 1 << 29:
        raise ValueError(f"the prefetch env kernel handles T < 2**29, got {T}")
    block_shape(K)
    if K < 1 or L < 1 or shift < 1:
        raise ValueError(f"K, L and shift must be >= 1, got K={K}, L={L}, shift={shift}")
    dev = traces.device
    if dev.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("the prefetch env kernel needs CUDA tensors (or TRITON_INTERPRET=1 for the interpreter)")
    n_ids = max(int(traces.max()), int(hints.max()), 0) + 1 if traces.numel() else 1
    if n_ids >= 1 << 31:
        raise ValueError(f"the prefetch env kernel takes dense ids below 2**31, got {n_ids - 1}")
    if working_sets is None:
        ws = torch.zeros((1, 1, 0), dtype=torch.int32, device=dev)
    else:
        ws = working_sets.to(device=dev, dtype=torch.int32).contiguous()
        if ws.dim() != 3 or ws.shape[0] != B or ws.shape[1] < 1:
            raise ValueError(f"working_sets must be [B={B}, phases, W], got {tuple(ws.shape)}")
    ng = NG_WHITE if working_sets is not None else NG_BLACK
    i32 = dict(dtype=torch.int32, device=dev)
    state = PrefetchEnvState(
        traces.to(torch.int32).t().contiguous(), hints.to(torch.int32).t().contiguous(), ws, int(shift), int(L),
        int(K), resolve_params(options), torch.zeros((NST, B), **i32), torch.zeros((4, K, B), **i32),
        torch.zeros((n_ids, B), **i32), torch.zeros((n_ids, 2, B), dtype=torch.int64, device=dev),
        torch.zeros((B, ng), dtype=torch.int64, device=dev), torch.zeros((B, K, NS), dtype=torch.int64, device=dev),
        torch.zeros((B, 3), dtype=torch.int64, device=dev))
    reset_lanes(state, torch.ones(B, dtype=torch.bool, device=dev))
    return state


def reset_lanes(state: PrefetchEnvState, lanes: torch.Tensor, traces=None, hints=None, working_sets=None) -> None:
    """Fresh episodes on ``lanes`` (bool [B]), with new ``traces``/``hints`` [lanes.sum(), T] (and working sets)
    if given (ids below the scratch's size: the caller's contract, no host read); other lanes are untouched."""
    if traces is not None:
        state.traces[:, lanes] = traces.to(device=state.traces.device, dtype=torch.int32).t()
        state.hints[:, lanes] = hints.to(device=state.traces.device, dtype=torch.int32).t()
    if working_sets is not None:
        state.working_sets[lanes] = working_sets.to(device=state.traces.device, dtype=torch.int32)
    init = torch.zeros(NST, dtype=torch.int32, device=state.st.device)
    for row, v in (("pend", -1), ("gen_cd", 1), ("nextgen", 2), ("rel_ema", REL_START)):
        init[ROWS.index(row)] = v
    state.st[:, lanes] = init[:, None]
    state.tile[0][:, lanes] = -1
    state.tile[1:][:, :, lanes] = 0
    state.last[:, lanes] = FAR_PAST
    state.scratch[:, :, lanes] = -1
    state.obs_global[lanes] = 0
    state.obs_slots[lanes] = 0
    state.acc[lanes] = 0


def block_shape(K: int):
    """(BLOCK_K, BLOCK_B, num_warps) of a launch with K slots."""
    for bk in SMALL_BLOCK_K:
        if K <= bk:
            return bk, 32 if bk == 8 else 128 // bk, 1
    return tile_shape(K, (), LARGE_BLOCK_K, 64, 8, "the prefetch env kernel handles")


def launch_prefetch_env(state: PrefetchEnvState, prefetch: torch.Tensor, victim: torch.Tensor) -> None:
    """Launcher: checks the actions' layout, picks the tile shape and grid, advances every lane in place."""
    T, B = state.traces.shape
    for name, a in (("prefetch", prefetch), ("victim", victim)):
        if a.shape != (B,) or a.dtype != torch.int64 or not a.is_contiguous() or a.device != state.st.device:
            raise ValueError(f"{name} must be contiguous int64 [{B}] on {state.st.device}")
    BK, BB, warps = block_shape(state.K)
    P, W = state.working_sets.shape[1:]
    _check_actions_kernel[(triton.cdiv(B, CHECK_BLOCK),)](prefetch, victim, state.st, B, state.K, BLOCK=CHECK_BLOCK)
    _prefetch_env_kernel[(triton.cdiv(B, BB),)](
        state.traces, state.hints, prefetch, victim, state.st, state.tile, state.last, state.scratch,
        state.working_sets, state.obs_global, state.obs_slots, state.acc,
        B, T, state.K, state.L, P, W, state.shift, *state.prm,
        NG=state.obs_global.shape[1], BLOCK_K=BK, BLOCK_B=BB, num_warps=warps)


def prefetch_env_step(state: PrefetchEnvState, prefetch, victim):
    """Apply each lane's action to its pending decision and serve it to the next one (spec: module docstring).

    Args:
        state: from :func:`new_state`, advanced in place.
        prefetch: int [B] in {0, 1} (read at kind 0; -1 leaves the lane untouched).
        victim: int [B] in [-1, K): the slot to evict, -1 for ``adaptive``'s victim (read at kind 1, and at kind
            0 when prefetching into a full cache).  Out-of-range actions given on the host raise here; on
            the device the kernel flags them (taken as 0 / -1) and the next :meth:`PrefetchEnvState.check`
            raises, so a rollout never syncs here.
    Returns:
        (obs_global int64 [B, NG], obs_slots int64 [B, K, NS], acc int64 [B, 3] faults/prefetches/evictions
        accrued by this step, done bool [B]); the tensors are the state's own, overwritten by the next step.
    """
    prefetch, victim = torch.as_tensor(prefetch), torch.as_tensor(victim)
    if not (prefetch.is_cuda or victim.is_cuda):  # the messages of gpupage.controller.prefetch_env.PrefetchEnv.step
        bad = (prefetch < -1) | (prefetch > 1)
        if bool(bad.any()):
            raise ValueError(f"prefetch actions must be -1, 0 or 1, got {int(prefetch[bad][0])}")
        bad = (victim < -1) | (victim >= state.K)
        if bool(bad.any()):
            raise ValueError(f"victim slots must be in [-1, {state.K}), got {int(victim[bad][0])}")
    dev = state.st.device
    launch_prefetch_env(state, prefetch.to(device=dev, dtype=torch.int64).contiguous(),
                        victim.to(device=dev, dtype=torch.int64).contiguous())
    return state.obs_global, state.obs_slots, state.acc, state.done


# ------------------------------------------------------------------------------- the plain-Python reference

def _naive_lane(trace, hint, L, K, ws, shift, options, counts):
    """One lane of the spec as a generator: yields each decision's (obs_global, obs_slots), receives
    (prefetch, victim); ``counts`` [faults, prefetches, evictions] grows as it serves.  ``adaptive``'s state is
    :class:`gpupage.zoo.heuristics.NaiveAdaptive` (explicit epoch/candidate tables)."""
    far = int(FAR_OUT)
    ada = NaiveAdaptive(options)
    right = total = fault_ema = 0
    rel_ema = REL_START
    slots = []

    def announced(t, b):
        return sum(hint[j] == b for j in range(max(t - L + 1, 0), t))

    def observe(kind, t, subject, subject_last):
        full = len(slots) >= K
        g = [kind, t, right, total, rel_ema, fault_ema, int(full), subject_last, ada.epoch.get(subject, 0),
             announced(t, subject), ada.victim(slots, t) if full else -1, L]
        if ws is not None:
            row = list(ws[min(t // shift, len(ws) - 1)])
            rank = row.index(subject) if subject in row else len(row)
            g += [int(rank < len(row)), rank]
        s = [[ada.last.get(b, far), ada.in_window(b, t), int(ada.protected(b)), announced(t, b)] for b in slots]
        return g, s + [[0] * NS for _ in range(K - len(slots))]

    for t, x in enumerate(trace):
        if x < 0:
            continue
        y = hint[t - L] if t >= L else -1
        if y >= 0 and y not in slots:
            pf, v = yield observe(0, t, y, ada.last.get(y, far))
            if pf == 1:
                counts[1] += 1
                if len(slots) < K:
                    slots.append(y)
                else:
                    slots[v if v >= 0 else ada.victim(slots, t)] = y
                    counts[2] += 1
        if y >= 0:
            hit = int(y == x)
            right, total = right + hit, total + 1
            rel_ema += ((hit << 16) - rel_ema) >> 5
        previous = ada.last.get(x, far)
        ada.access(x, t)
        f = int(x not in slots)
        fault_ema += ((f << 16) - fault_ema) >> 6
        if f:
            counts[0] += 1
            if len(slots) < K:
                slots.append(x)
            else:
                _, v = yield observe(1, t, x, previous)
                slots[v if v >= 0 else ada.victim(slots, t)] = x
                counts[2] += 1


class NaiveLanes:
    """Plain-Python lanes of the spec for the tests: ``traces``/``hints`` int [B, T], ``working_sets``
    [B, P, W] or None; :func:`naive_prefetch_env_step` advances them."""

    def __init__(self, traces, hints, L, K, working_sets=None, shift=1, options=None):
        tr, hi = torch.as_tensor(traces).tolist(), torch.as_tensor(hints).tolist()
        ws = None if working_sets is None else torch.as_tensor(working_sets).tolist()
        self.K, self.counts = K, [[0, 0, 0] for _ in tr]
        self.lanes = [_naive_lane(tr[b], hi[b], L, K, None if ws is None else ws[b], shift, options, self.counts[b])
                      for b in range(len(tr))]
        self.started = [False] * len(tr)
        self.done = [False] * len(tr)
        ng = NG_BLACK if ws is None else NG_WHITE
        self.obs = [([0] * ng, [[0] * NS for _ in range(K)]) for _ in tr]


def naive_prefetch_env_step(env: NaiveLanes, prefetch, victim):
    """The reference of :func:`prefetch_env_step`: same arguments (lists), same results as int64 tensors
    (obs_global [B, NG], obs_slots [B, K, NS], acc [B, 3], done bool [B])."""
    acc = []
    for b, lane in enumerate(env.lanes):
        before = list(env.counts[b])
        if not env.done[b] and prefetch[b] >= 0:
            try:
                env.obs[b] = lane.send((prefetch[b], victim[b])) if env.started[b] else next(lane)
            except StopIteration:
                env.done[b] = True
            env.started[b] = True
        acc.append([a - c for a, c in zip(env.counts[b], before)])
    return (torch.tensor([g for g, _ in env.obs], dtype=torch.int64),
            torch.tensor([s for _, s in env.obs], dtype=torch.int64), torch.tensor(acc, dtype=torch.int64),
            torch.tensor(env.done))


_SIG = {"trace_ptr": "*i32", "hint_ptr": "*i32", "pf_ptr": "*i64", "vic_ptr": "*i64", "st_ptr": "*i32",
        "tile_ptr": "*i32", "last_ptr": "*i32", "scratch_ptr": "*i64", "ws_ptr": "*i32", "og_ptr": "*i64",
        "os_ptr": "*i64", "acc_ptr": "*i64", **{n: "i32" for n in ("B", "T", "K", "L", "P", "W", "shift")},
        **{n: "i32" for n in ("novel_gap", "gain", "decay", "alarm", "refractory", "stale", "suspect")}}
# Every specialisation `prefetch_env_step` can launch, for scripts/compile_kernels.py.
AOT_SPECS = [aot_spec(f"prefetch_env {mode} K<={bk}", _prefetch_env_kernel, _SIG, block_shape(bk), NG=ng)
             for mode, ng in (("blackbox", NG_BLACK), ("whitebox", NG_WHITE)) for bk in SMALL_BLOCK_K + LARGE_BLOCK_K]
AOT_SPECS.append(dict(name="prefetch_env check_actions", fn=_check_actions_kernel,
                      signature={"pf_ptr": "*i64", "vic_ptr": "*i64", "st_ptr": "*i32", "B": "i32", "K": "i32"},
                      constexprs={"BLOCK": CHECK_BLOCK}, num_warps=4))
