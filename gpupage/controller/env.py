"""The paging environment of the Page Controller (Def. 14), batched and pure (gymnax style).

``reset(params, seed) -> (obs, state)`` and ``step(state, action, params) ->
(obs, state, reward, terminated, truncated, info)``.  A state is a dataclass of
integer tensors with leading dim B (one lane per trace); ``step`` never mutates
its input.  One decision per fault that needs an eviction: between decisions
hits and cold fills are simulated inside ``step`` (numba on CPU tensors, the
Triton kernel ``kernels.env_step`` on CUDA tensors), so a rollout never syncs
with the host per request.

Everything here is integer: the state's layout and constants are in
:mod:`gpupage.controller.state`, and :mod:`gpupage.controller.features` turns the
state into float features.

A lane that finished its trace stays finished: further steps are no-ops with
reward 0 (``terminated`` stays True), which keeps fixed-shape rollout buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from numba import njit

from ..core.cpu import NEVER, fill_next_uses
from ..core.simulate import as_traces
from ..core.traces import ZipfParams, zipf_traces
from .features import observe
from .state import (ACTIVE_GAP, ALARM, CALM_DECAY, CAP, D_CAND_T, D_CUR, D_EPOCH_T, D_GEN0, D_GEN1, D_NEXT, D_RESUME,
                    D_S, HALF_LIVES, NOVEL_GAIN, REFRACTORY, STEP_FIELDS, EnvState, decay_table_on)
from ..core import limits

MODES = ("blackbox", "whitebox")
DONE_CHECK_EVERY = 16
"""Decisions between a rollout loop's checks that every lane is done: the check is the loop's
only host sync, and steps past a lane's end are no-ops."""
REMAP_IDS = 1 << 16
"""Traces with ids from here on are remapped to 0..n-1 (the env keeps per-block state)."""


@dataclass(frozen=True)
class EnvParams:
    """Static configuration of an environment batch."""

    K: int = 8
    """Cache size K_b (slots)."""
    zipf: ZipfParams = ZipfParams()
    """Trace family ``reset`` draws from (App. B by default)."""
    mode: str = "blackbox"
    """'blackbox': features from the request history only; 'whitebox': plus the generator's latent state."""
    device: str = "cpu"

    def __post_init__(self):
        if self.K < 1:
            raise ValueError(f"K must be >= 1, got {self.K}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")


# --------------------------------------------------------------------------- numba CPU path


@njit(inline="always", cache=True)
def _touch(b, x, t, count, last_use, gap, dc, streak, since, det, pcount, pstamp, tab, cap):
    lu = last_use[b, x]
    novel = lu < 0 or t - lu >= ACTIVE_GAP
    if novel:
        streak[b, x] = 0
        since[b, x] = t
    streak[b, x] += 1
    cur = det[b, D_CUR]
    for j in range(2):
        g = det[b, D_GEN0] if j == cur else det[b, D_GEN1]
        if pstamp[b, x, j] != g:
            pstamp[b, x, j] = g
            pcount[b, x, j] = 0
        pcount[b, x, j] += 1
    if t >= det[b, D_RESUME]:
        S = det[b, D_S] + (NOVEL_GAIN if novel else -CALM_DECAY)
        if S <= 0:
            S = 0
            det[b, D_GEN1] = det[b, D_NEXT]
            det[b, D_NEXT] += 1
            det[b, D_CAND_T] = t + 1
        elif S >= ALARM:
            det[b, D_CUR] = 1 - cur
            det[b, D_GEN0] = det[b, D_GEN1]
            det[b, D_GEN1] = det[b, D_NEXT]
            det[b, D_NEXT] += 1
            det[b, D_EPOCH_T] = det[b, D_CAND_T]
            det[b, D_CAND_T] = t + 1
            det[b, D_RESUME] = t + REFRACTORY
            S = 0
        det[b, D_S] = S
    if lu >= 0:
        gap[b, x] = t - lu
        dt = min(t - lu, cap)
        for h in range(dc.shape[2]):
            dc[b, x, h] = (dc[b, x, h] * tab[h, dt]) >> 16
    for h in range(dc.shape[2]):
        dc[b, x, h] += 65536
    last_use[b, x] = t
    count[b, x] += 1


@njit(inline="always", cache=True)
def _fault(b, t, fr, frt, faults, tab, cap):
    for h in range(fr.shape[1]):
        if frt[b] >= 0:
            fr[b, h] = (fr[b, h] * tab[h, min(t - frt[b], cap)]) >> 16
        fr[b, h] += 65536
    frt[b] = t
    faults[b] += 1


@njit(cache=True)
def advance_cpu(action, traces, t, blk, last, ins, hits, slot_of, count, last_use, gap, dc, streak, since,
                det, pcount, pstamp,
                fr, frt, faults, decisions, done, tab, cap):
    """In place, per lane: evict slot ``action[b]`` for the pending fault (when >= 0),
    then serve requests until the next fault that needs an eviction or the trace's end."""
    B, T = traces.shape
    K = blk.shape[1]
    # not core.cpu's evict/place: those take one lane's rows, and the state is [B, n] and [B, K] arrays
    # (the features read them), so a row would be a new view per request
    for b in range(B):  # serial: a decision is a few requests per lane, too little to share out
        if done[b]:
            continue
        tt = t[b]
        a = action[b]
        if a >= 0:
            x = traces[b, tt]
            slot_of[b, blk[b, a]] = -1
            blk[b, a] = x
            slot_of[b, x] = a
            last[b, a] = tt
            ins[b, a] = tt
            hits[b, a] = 0
            _touch(b, x, tt, count, last_use, gap, dc, streak, since, det, pcount, pstamp, tab, cap)
            _fault(b, tt, fr, frt, faults, tab, cap)
            decisions[b] += 1
            tt += 1
        while tt < T:
            x = traces[b, tt]
            if x < 0:
                tt += 1
                continue
            s = slot_of[b, x]
            if s >= 0:
                last[b, s] = tt
                hits[b, s] += 1
            else:
                s = -1
                for i in range(K):
                    if blk[b, i] < 0:
                        s = i
                        break
                if s < 0:
                    break  # a decision: leave request tt pending
                blk[b, s] = x
                slot_of[b, x] = s
                last[b, s] = tt
                ins[b, s] = tt
                hits[b, s] = 0
                _fault(b, tt, fr, frt, faults, tab, cap)
            _touch(b, x, tt, count, last_use, gap, dc, streak, since, det, pcount, pstamp, tab, cap)
            tt += 1
        t[b] = tt
        if tt >= T:
            done[b] = True


def next_occurrence(traces):
    """int32 [B, T]: next index of the same block after t (NEVER if none; pads NEVER)."""
    out = np.full(traces.shape, NEVER, dtype=np.int32)
    fill_next_uses(traces, out)
    return out


# --------------------------------------------------------------------------- public API


def _advance(state: EnvState, action: torch.Tensor) -> None:
    """Advance ``state`` in place (the caller owns it)."""
    tab = decay_table_on(state.traces.device)
    args = [getattr(state, f) for f in STEP_FIELDS]
    if state.traces.is_cuda:
        from kernels.env_step import env_step

        env_step(action, state.traces, *args, tab, CAP)
        return
    arrs = [a.numpy() for a in args]
    advance_cpu(action.numpy(), state.traces.numpy(), *arrs, tab.numpy(), CAP)


def init_state(traces, K: int, latent=None, device="cpu") -> EnvState:
    """A fresh state over given traces (before any request), advanced to the first decision.

    Args:
        traces: integer ``[B, T]`` block ids >= 0 (-1 pads); large sparse ids are remapped.
        latent: a :class:`~gpupage.core.traces.ZipfLatent` for white-box features (ids must not be remapped).
    """
    tr = as_traces(traces)
    B, T = tr.shape
    if not 1 <= K <= max(T, 1):
        raise ValueError(f"K must be in [1, T={T}] for the controller env (its per-slot state is [B, K], and a "
                         f"cache of more than T blocks never evicts), got {K}")
    # an int64 copy of the traces, their int32 ids and next uses (each lane's map of blocks seen aside)
    limits.require(16 * B * T, f"the controller env over {B} lanes x {T} requests")
    arr = tr.detach().cpu().numpy().astype(np.int64)
    if arr.size and int(arr.max()) >= REMAP_IDS:  # per-block state is [B, n]: keep n small
        if latent is not None:
            raise ValueError("white-box features need Zipf traces with their original ids")
        valid = arr >= 0
        _, inverse = np.unique(arr[valid], return_inverse=True)
        arr[valid] = inverse
    arr = np.ascontiguousarray(arr.astype(np.int32))
    if arr.size and int(arr.min()) < -1:
        raise ValueError("block ids must be >= 0 (-1 pads)")
    n = max(int(arr.max()) + 1 if arr.size else 1, 1)
    ws = latent.working_sets.long() if latent is not None else None  # [B, P, W]
    if ws is not None:
        n = max(n, int(ws.max()) + 1)
    P = ws.shape[1] if ws is not None else 0
    # per-block state (15 int64 words a block and lane), per-slot state, next uses, white-box ranks
    limits.require(8 * B * (15 * n + 4 * K) + 4 * B * T + 2 * B * P * n,
                   f"the controller env's state ({B} lanes, {n} blocks, K = {K})")
    with limits.work_threads(B):
        nxt = torch.from_numpy(next_occurrence(arr))
    ws_rank, shift, W = None, 1, 1
    if ws is not None:
        W = ws.shape[2]
        ws_rank = torch.full((B, P, n), -1, dtype=torch.int16)
        ws_rank.scatter_(2, ws, torch.arange(W, dtype=torch.int16).expand(B, P, W).contiguous())
        shift = latent.shift
    z = lambda *shape: torch.zeros(shape, dtype=torch.int64)  # noqa: E731
    m1 = lambda *shape: torch.full(shape, -1, dtype=torch.int64)  # noqa: E731
    state = EnvState(
        traces=torch.from_numpy(arr), nxt=nxt, ws_rank=ws_rank, shift=shift, ws_size=W,
        t=z(B), blk=m1(B, K), last=z(B, K), ins=z(B, K), hits=z(B, K),
        slot_of=m1(B, n), count=z(B, n), last_use=m1(B, n), gap=m1(B, n), dc=z(B, n, len(HALF_LIVES)),
        streak=z(B, n), since=z(B, n), det=z(B, 8), pcount=z(B, n, 2), pstamp=m1(B, n, 2),
        fr=z(B, len(HALF_LIVES)), frt=m1(B), faults=z(B), decisions=z(B), done=torch.zeros(B, dtype=torch.bool),
    )
    if str(device) != "cpu":
        state = replace(state, **{f.name: getattr(state, f.name).to(device) for f in fields(state)
                                  if isinstance(getattr(state, f.name), torch.Tensor)})
    state.det[:, D_GEN1] = 1
    state.det[:, D_NEXT] = 2
    _advance(state, torch.full((B,), -1, dtype=torch.int64, device=state.t.device))
    return state


def reset(params: EnvParams, seed):
    """Fresh lanes on the App. B family: ``seed`` an int (one lane) or a list of seeds (one lane each).
    Returns (obs, state)."""
    seeds = [int(seed)] if np.ndim(seed) == 0 else [int(s) for s in seed]
    traces, latent = zipf_traces(params.zipf, seed=seeds, return_latent=True)
    state = init_state(traces, params.K, latent if params.mode == "whitebox" else None, params.device)
    return observe(state, params.mode), state


def reset_traces(params: EnvParams, traces, latent=None):
    """Fresh lanes on given traces (e.g. a trace file).  Returns (obs, state)."""
    if params.mode == "whitebox" and latent is None:
        raise ValueError("white-box mode needs the traces' latent state")
    state = init_state(traces, params.K, latent if params.mode == "whitebox" else None, params.device)
    return observe(state, params.mode), state


def step(state: EnvState, action, params: EnvParams):
    """Evict slot ``action[b]`` (int [B]) at each lane's pending fault, then run to the next decision.

    Returns (obs, state, reward, terminated, truncated, info): reward float [B] is minus the
    faults incurred (-1 per resolved fault, 0 on finished lanes), terminated bool [B] once a
    lane's trace has ended, truncated all False, info {'dt': requests served, int64 [B]}.
    """
    action = torch.as_tensor(action, device=state.t.device).to(torch.int64)
    if action.shape != (state.batch,):
        raise ValueError(f"action must be [B]={state.batch}, got {tuple(action.shape)}")
    live = ~state.done
    if bool(((action < 0) | (action >= state.K))[live].any()) if not state.t.is_cuda else False:
        raise ValueError(f"actions must be slots in [0, {state.K})")
    new = state.clone()
    act = torch.where(live, action, torch.full_like(action, -1))
    _advance(new, act)
    reward = (state.faults - new.faults).to(torch.float32)
    info = {"dt": new.t - state.t}
    return observe(new, params.mode), new, reward, new.done.clone(), torch.zeros_like(new.done), info


def step_inplace(state: EnvState, action) -> None:
    """The allocation-free step rollouts use: advance ``state`` itself (actions of done lanes ignored)."""
    act = torch.where(state.done, torch.full_like(action, -1), action.to(torch.int64))
    _advance(state, act)


def slot_next_use(state: EnvState) -> torch.Tensor:
    """int64 [B, K]: next request time of each resident block (NEVER if never again; empty slots -1)."""
    T = state.T
    idx = state.last.clamp(0, T - 1)
    nu = torch.gather(state.nxt, 1, idx).to(torch.int64)
    return torch.where(state.blk >= 0, nu, torch.full_like(nu, -1))


def belady_mask(state: EnvState) -> torch.Tensor:
    """bool [B, K]: the slots Belady may evict now (farthest next use; every never-again block ties there)."""
    nu = slot_next_use(state)
    return (nu == nu.max(dim=1, keepdim=True).values) & (state.blk >= 0)


def valid_mask(state: EnvState) -> torch.Tensor:
    """bool [B, K]: slots that may be evicted (resident blocks)."""
    return state.blk >= 0
