"""The paging environment's step on CUDA: advance every lane to its next decision.

One program (one warp) owns ``BLOCK_B`` lanes (32 up to K = 8, fewer for larger
K so that a tile stays at 128 elements) and keeps their slot state (block, last
access, insertion time, hits since insertion: ``[BLOCK_K, BLOCK_B]`` int32
tiles) in registers; per-block state (slot map, counts, last use, reuse gap, decayed
counts) stays in global memory and is gathered/scattered per request.  The
program first applies each lane's eviction (``action >= 0``), then loops over
requests while any of its lanes is still serving hits or cold fills; a lane
stops at its next fault on a full cache (the decision, left pending) or at its
trace's end.  Integers only, so it matches :func:`gpupage.controller.env.advance_cpu`
exactly (the interpreter tests check it).  Offsets are int64 (B*T and B*n
may pass 2**31).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.controller import state as _state

ACTIVE_GAP = _state.ACTIVE_GAP
NOVEL_GAIN = tl.constexpr(_state.NOVEL_GAIN)
CALM_DECAY = tl.constexpr(_state.CALM_DECAY)
ALARM = tl.constexpr(_state.ALARM)
REFRACTORY = tl.constexpr(_state.REFRACTORY)

BLOCK_B = 32
BLOCK_KS = (8, 16, 32, 64, 128)
MAX_K = BLOCK_KS[-1]


@triton.jit
def _decay_add(ptr, row, m, seen, dt, tab_ptr, CAP, H: tl.constexpr):
    """Where m: the H fixed-point counts at ptr[row * H + h] decay over dt requests (where seen), plus one."""
    for h in tl.static_range(H):
        c = tl.load(ptr + row * H + h, mask=m, other=0)
        f = tl.load(tab_ptr + h * (CAP + 1) + dt, mask=m & seen, other=0)
        c = tl.where(seen, (c * f) >> 16, c) + 65536
        tl.store(ptr + row * H + h, c, mask=m)


@triton.jit
def _touch(x, t, m, lanes, N, count_ptr, last_use_ptr, gap_ptr, dc_ptr, streak_ptr, since_ptr, det_ptr, pcount_ptr,
           pstamp_ptr, tab_ptr, CAP, H: tl.constexpr, ACTIVE_GAP: tl.constexpr):
    """Block x of each lane (where m) is accessed at time t: count, gap, decayed counts, streak,
    change detector and its per-generation counts, last use."""
    bo = lanes * N + x
    lu = tl.load(last_use_ptr + bo, mask=m, other=-1)
    seen = m & (lu >= 0)
    fresh = m & ((lu < 0) | (t - lu >= ACTIVE_GAP))
    st = tl.load(streak_ptr + bo, mask=m, other=0)
    tl.store(streak_ptr + bo, tl.where(fresh, 1, st + 1), mask=m)
    tl.store(since_ptr + bo, t, mask=fresh)
    tl.store(gap_ptr + bo, t - lu, mask=seen)
    _decay_add(dc_ptr, bo, m, seen, tl.minimum(t - lu, CAP), tab_ptr, CAP, H)
    tl.store(last_use_ptr + bo, t, mask=m)
    cnt = tl.load(count_ptr + bo, mask=m, other=0)
    tl.store(count_ptr + bo, cnt + 1, mask=m)

    # change detector (gpupage.controller.env._touch): det = S, cur, gen0, gen1, next, resume, cand_t, epoch_t
    db = det_ptr + lanes * 8
    cur = tl.load(db + 1, mask=m, other=0)
    gen0 = tl.load(db + 2, mask=m, other=0)
    gen1 = tl.load(db + 3, mask=m, other=0)
    for j in tl.static_range(2):
        g = tl.where(cur == j, gen0, gen1)
        pa = bo * 2 + j
        stamp = tl.load(pstamp_ptr + pa, mask=m, other=0)
        c = tl.where(stamp != g, 0, tl.load(pcount_ptr + pa, mask=m, other=0)) + 1
        tl.store(pstamp_ptr + pa, g, mask=m)
        tl.store(pcount_ptr + pa, c, mask=m)
    nxt = tl.load(db + 4, mask=m, other=0)
    resume = tl.load(db + 5, mask=m, other=0)
    cand_t = tl.load(db + 6, mask=m, other=0)
    epoch_t = tl.load(db + 7, mask=m, other=0)
    on = m & (t >= resume)
    S = tl.load(db, mask=m, other=0) + tl.where(fresh, NOVEL_GAIN, -CALM_DECAY)
    low = on & (S <= 0)
    alarm = on & (S >= ALARM)
    restart = low | alarm
    tl.store(db, tl.where(restart, 0, S), mask=on)
    tl.store(db + 1, tl.where(alarm, 1 - cur, cur), mask=on)
    tl.store(db + 2, tl.where(alarm, gen1, gen0), mask=on)
    tl.store(db + 3, tl.where(restart, nxt, gen1), mask=on)
    tl.store(db + 4, tl.where(restart, nxt + 1, nxt), mask=on)
    tl.store(db + 5, tl.where(alarm, t + REFRACTORY, resume), mask=on)
    tl.store(db + 6, tl.where(restart, t + 1, cand_t), mask=on)
    tl.store(db + 7, tl.where(alarm, cand_t, epoch_t), mask=on)


@triton.jit
def _fault(t, m, lanes, fr_ptr, frt, faults, tab_ptr, CAP, H: tl.constexpr):
    """A fault of each lane (where m) at time t: decayed fault counts, last fault time, total."""
    _decay_add(fr_ptr, lanes, m, frt >= 0, tl.minimum(t - frt, CAP), tab_ptr, CAP, H)
    frt = tl.where(m, t, frt)
    faults = faults + m.to(tl.int64)
    return frt, faults


@triton.jit
def _env_step_kernel(action_ptr, trace_ptr, t_ptr, blk_ptr, last_ptr, ins_ptr, hits_ptr, slot_of_ptr, count_ptr,
                     last_use_ptr, gap_ptr, dc_ptr, streak_ptr, since_ptr, det_ptr, pcount_ptr, pstamp_ptr, fr_ptr,
                     frt_ptr, faults_ptr, decisions_ptr, done_ptr, tab_ptr,
                     B, T, K, N, CAP, H: tl.constexpr, ACTIVE_GAP: tl.constexpr, BLOCK_B: tl.constexpr,
                     BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    lanes = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    lm = lanes < B
    slot = tl.arange(0, BLOCK_K)[:, None]
    km = (slot < K) & lm[None, :]
    so = lanes[None, :] * K + slot
    # slot tiles live in registers as int32 (ids < 2**16 after the env's remap, times < 2**31)
    blk = tl.load(blk_ptr + so, mask=km, other=-1).to(tl.int32)
    last = tl.load(last_ptr + so, mask=km, other=0).to(tl.int32)
    ins = tl.load(ins_ptr + so, mask=km, other=0).to(tl.int32)
    hits = tl.load(hits_ptr + so, mask=km, other=0).to(tl.int32)
    n = tl.sum((blk >= 0).to(tl.int64), axis=0)
    t = tl.load(t_ptr + lanes, mask=lm, other=0)
    done = tl.load(done_ptr + lanes, mask=lm, other=1) != 0
    act = tl.load(action_ptr + lanes, mask=lm, other=-1)
    frt = tl.load(frt_ptr + lanes, mask=lm, other=-1)
    faults = tl.load(faults_ptr + lanes, mask=lm, other=0)
    decisions = tl.load(decisions_ptr + lanes, mask=lm, other=0)
    run = lm & (done == 0)
    trow = lanes * T

    # the pending fault: the chosen slot's block leaves, the request takes its slot
    ap = run & (act >= 0)
    x = tl.load(trace_ptr + trow + t, mask=ap, other=0).to(tl.int64)
    sel = (slot == act[None, :]) & ap[None, :]
    v = tl.sum(tl.where(sel, blk, 0), axis=0).to(tl.int64)
    tl.store(slot_of_ptr + lanes * N + v, -1, mask=ap)
    tl.store(slot_of_ptr + lanes * N + x, act, mask=ap)
    blk = tl.where(sel, x.to(tl.int32)[None, :], blk)
    last = tl.where(sel, t.to(tl.int32)[None, :], last)
    ins = tl.where(sel, t.to(tl.int32)[None, :], ins)
    hits = tl.where(sel, 0, hits)
    _touch(x, t, ap, lanes, N, count_ptr, last_use_ptr, gap_ptr, dc_ptr, streak_ptr, since_ptr, det_ptr, pcount_ptr,
           pstamp_ptr, tab_ptr, CAP, H, ACTIVE_GAP)
    frt, faults = _fault(t, ap, lanes, fr_ptr, frt, faults, tab_ptr, CAP, H)
    decisions = decisions + ap.to(tl.int64)
    t = t + ap.to(tl.int64)

    # hits and cold fills until each lane's next decision
    active = run & (t < T)
    while tl.max(active.to(tl.int32), axis=0) > 0:
        x = tl.load(trace_ptr + trow + t, mask=active, other=-1).to(tl.int64)
        valid = active & (x >= 0)
        s = tl.load(slot_of_ptr + lanes * N + x, mask=valid, other=-1)
        hit = valid & (s >= 0)
        cold = valid & (s < 0) & (n < K)
        decide = valid & (s < 0) & (n >= K)
        hsel = (slot == s[None, :]) & hit[None, :]
        t32 = t.to(tl.int32)[None, :]
        last = tl.where(hsel, t32, last)
        hits = tl.where(hsel, hits + 1, hits)
        csel = (slot == n[None, :]) & cold[None, :]
        blk = tl.where(csel, x.to(tl.int32)[None, :], blk)
        last = tl.where(csel, t32, last)
        ins = tl.where(csel, t32, ins)
        hits = tl.where(csel, 0, hits)
        tl.store(slot_of_ptr + lanes * N + x, n, mask=cold)
        n = n + cold.to(tl.int64)
        frt, faults = _fault(t, cold, lanes, fr_ptr, frt, faults, tab_ptr, CAP, H)
        _touch(x, t, hit | cold, lanes, N, count_ptr, last_use_ptr, gap_ptr, dc_ptr, streak_ptr, since_ptr, det_ptr,
               pcount_ptr, pstamp_ptr, tab_ptr, CAP, H, ACTIVE_GAP)
        go = active & (decide == 0)
        t = t + go.to(tl.int64)
        active = go & (t < T)

    tl.store(blk_ptr + so, blk.to(tl.int64), mask=km)
    tl.store(last_ptr + so, last.to(tl.int64), mask=km)
    tl.store(ins_ptr + so, ins.to(tl.int64), mask=km)
    tl.store(hits_ptr + so, hits.to(tl.int64), mask=km)
    tl.store(t_ptr + lanes, t, mask=lm)
    tl.store(done_ptr + lanes, (run & (t >= T)) | (done != 0), mask=lm)
    tl.store(frt_ptr + lanes, frt, mask=lm)
    tl.store(faults_ptr + lanes, faults, mask=lm)
    tl.store(decisions_ptr + lanes, decisions, mask=lm)


def lanes_per_program(bk: int) -> int:
    """32 lanes (one per thread of a warp) up to 8 slots; beyond, 128 // bk lanes, so a program's
    slot tiles stay at 128 elements spread over the warp's threads: with 256, ptxas spilled
    192-288 bytes at 16 and 32 slots on sm_80; with 128 no specialisation spills."""
    return BLOCK_B if bk <= 8 else 128 // bk


def block_k(K: int) -> int:
    for bk in BLOCK_KS:
        if K <= bk:
            return bk
    raise ValueError(f"the env kernel handles K <= {MAX_K}, got {K}")


def env_step(action, traces, t, blk, last, ins, hits, slot_of, count, last_use, gap, dc, streak, since, det, pcount,
             pstamp, fr, frt, faults, decisions, done, tab, cap: int) -> None:
    """Advance every lane in place (the argument order of :func:`gpupage.controller.env.advance_cpu`).

    Shapes: action/t/frt/faults/decisions int64 [B], fr int64 [B, H], done bool [B], traces int32 [B, T],
    blk/last/ins/hits int64 [B, K], slot_of/count/last_use/gap/streak/since int64 [B, n], dc int64 [B, n, H],
    det int64 [B, 8], pcount/pstamp int64 [B, n, 2],
    tab int64 [H, cap + 1].  All on one device (CUDA, or CPU under TRITON_INTERPRET=1)."""
    B, T = traces.shape
    K = blk.shape[1]
    N = slot_of.shape[1]
    H = dc.shape[2]
    for name, x in (("traces", traces), ("blk", blk), ("slot_of", slot_of), ("dc", dc), ("tab", tab)):
        if not x.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
    bk = block_k(K)
    bb = lanes_per_program(bk)
    grid = (triton.cdiv(B, bb),)
    _env_step_kernel[grid](action.contiguous(), traces, t, blk, last, ins, hits, slot_of, count, last_use, gap, dc,
                           streak, since, det, pcount, pstamp, fr, frt, faults, decisions, done.view(torch.uint8), tab,
                           B, T, K, N, cap,
                           H=H, ACTIVE_GAP=ACTIVE_GAP, BLOCK_B=bb, BLOCK_K=bk, num_warps=1)


_INT_ARGS = {"trace_ptr": "*i32", "done_ptr": "*u8", "B": "i32", "T": "i32", "K": "i32", "N": "i32", "CAP": "i32"}
_SIG = {name: _INT_ARGS.get(name, "*i64") for name in _env_step_kernel.arg_names
        if name not in ("H", "ACTIVE_GAP", "BLOCK_B", "BLOCK_K")}

AOT_SPECS = [
    dict(name=f"env_step K<={bk}", fn=_env_step_kernel, signature=dict(_SIG),
         constexprs={"H": 5, "ACTIVE_GAP": ACTIVE_GAP, "BLOCK_B": lanes_per_program(bk), "BLOCK_K": bk}, num_warps=1)
    for bk in BLOCK_KS
]
