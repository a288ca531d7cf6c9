"""The environment's PREFETCH action (issue 13, part 2): a batched, event-driven prefetch env on the CPU.

Serving follows :mod:`gpupage.core.prefetch` with ``adaptive`` eviction (:mod:`gpupage.zoo.prefetching`)
exactly.  A *decision* is due right before request t whenever the hint announcing r_t, h_{t-L}, names a block
that is not resident: the action is 1 (prefetch it, evicting ``adaptive``'s victim on a full cache) or 0
(don't).  Steps with no such hint are served without asking, so a lane's decisions are its prefetch
opportunities and replaying them as masked hints through ``simulate_prefetch(..., "follow_hint",
"adaptive")`` gives the same integers (tests/test_prefetch_env.py).  Victims, at a prefetch or a fault, are
``adaptive``'s: the controller learns *when* to trust a hint, the eviction stays the strongest heuristic's.

The reward of a decision is minus the cost accrued until the next one: faults + lam_fetch * prefetches (+
lam_evict * evictions), the prefetch itself and request r_t's fault included, so credit is mostly immediate.

Observation (black-box, ``FEATURES``): the hint's reliability so far (the fraction of past hints h_{s-L} that
equalled r_s, and a recent average), the hinted block's history (requested before, recency, ``adaptive``'s
count), the victim a prefetch would displace (recency, count, protected), a free slot, the recent fault rate,
lam_fetch and how often the block recurs among the L - 1 hints already out.  White-box adds the generator's
latent state: whether the hinted block is in the current working set, and its Zipf rank.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from ..core import limits
from ..core.cpu import evict, place
from ..core.prefetch import check_costs, check_hint_options
from ..zoo.heuristics import FAR_PAST, PROTECT, access, resolve_params, victim

FEATURES = ("hint_reliability", "hint_reliability_recent", "hinted_seen", "hinted_recency", "hinted_count",
            "cache_full", "victim_recency", "victim_count", "victim_protected", "fault_rate", "lam_fetch",
            "hinted_again")
WHITEBOX_FEATURES = ("hinted_in_working_set", "hinted_rank")
MODES = ("blackbox", "whitebox")

# per-lane integer state, columns of ``sc``
TT, GEN0, GEN1, NEXTGEN, CUR, SS, RESUME, NN, FAULTS, PREF, EVICTIONS, RIGHT, TOTAL, PENDING, DONE = range(15)
NSC = 15
EMA_HINT = 1.0 / 32  # recent reliability: about the last 32 hints
EMA_FAULT = 1.0 / 64


def n_features(mode: str) -> int:
    if mode not in MODES:
        raise ValueError(f"unknown feature mode {mode!r}; choose from {', '.join(MODES)}")
    return len(FEATURES) + (len(WHITEBOX_FEATURES) if mode == "whitebox" else 0)


@njit(inline="always", cache=True)
def _clock(sc):
    """``adaptive``'s clock (see :func:`gpupage.zoo.heuristics.access`) as the lane's state holds it."""
    return sc[GEN0], sc[GEN1], sc[NEXTGEN], sc[CUR], sc[SS], sc[RESUME]


@njit(inline="always", cache=True)
def _load(t, k, prm, x, slot_of, last, cnt, stamp, blk, sc):
    """Bring x into a free slot or ``adaptive``'s victim's (the victim scored with the state before t)."""
    if sc[NN] < k:
        s = sc[NN]
        sc[NN] += 1
    else:
        s = victim(t, k, prm, blk, last, cnt, stamp, _clock(sc))
        evict(slot_of, blk, s)
        sc[EVICTIONS] += 1
    place(slot_of, blk, s, x)


@njit(inline="always", cache=True)
def _serve(t, x, k, prm, slot_of, last, cnt, stamp, blk, sc):
    """Request x at t, as ``gpupage.zoo.prefetching._serve_lane`` serves it; returns 1 on a fault."""
    sc[GEN0], sc[GEN1], sc[NEXTGEN], sc[CUR], sc[SS], sc[RESUME] = access(t, x, prm, last, cnt, stamp, _clock(sc))
    if slot_of[x] >= 0:
        return 0
    sc[FAULTS] += 1
    _load(t, k, prm, x, slot_of, last, cnt, stamp, blk, sc)
    return 1


@njit(inline="always", cache=True)
def _recency(t, lb, T):
    return 1.0 if lb == FAR_PAST else math.log1p(t - lb) / math.log1p(T)


@njit(inline="always", cache=True)
def _observe(t, y, k, prm, hint, L, T, lam, slot_of, last, cnt, stamp, blk, sc, fs, ws, shift, o):
    cur = sc[CUR]
    o[0] = (sc[RIGHT] + 1.0) / (sc[TOTAL] + 2.0)
    o[1] = fs[0]
    o[2] = 0.0 if last[y] == FAR_PAST else 1.0
    o[3] = _recency(t, last[y], T)
    g = sc[GEN0] if cur == 0 else sc[GEN1]
    o[4] = math.log1p(cnt[cur, y] if stamp[cur, y] == g else 0) / 5.0
    full = sc[NN] >= k
    o[5] = 1.0 if full else 0.0
    o[6] = 0.0
    o[7] = 0.0
    o[8] = 0.0
    if full:
        s = victim(t, k, prm, blk, last, cnt, stamp, _clock(sc))
        v = blk[s]
        o[6] = _recency(t, last[v], T)
        g0 = sc[GEN0]
        p = cnt[cur, v] if stamp[cur, v] == g0 and last[v] >= t - prm[5] else 0
        o[7] = math.log1p(p) / 5.0
        o[8] = 1.0 if sc[SS] >= prm[6] and stamp[1 - cur, v] == sc[GEN1] else 0.0
    o[9] = fs[1]
    o[10] = lam
    again = 0
    for j in range(max(t - L + 1, 0), t):
        if hint[j] == y:
            again += 1
    o[11] = again / max(L - 1, 1)
    W = ws.shape[1]
    if o.shape[0] > 12 and W > 0:
        ph = min(t // shift, ws.shape[0] - 1)
        o[12] = 0.0
        o[13] = 1.0
        for r in range(W):
            if ws[ph, r] == y:
                o[12] = 1.0
                o[13] = r / W


@njit(parallel=True, cache=True)
def _step(traces, hints, L, k, prm, lam, action, slot_of, last, cnt, stamp, blk, sc, fs, ws, shift, obs, cost):
    B, T = traces.shape
    lam_fetch, lam_evict = lam[0], lam[1]
    for b in prange(B):
        cost[b] = 0.0
        s = sc[b]
        if s[DONE] or action[b] < 0:  # -1: leave the lane as it is
            continue
        f0, p0, e0 = s[FAULTS], s[PREF], s[EVICTIONS]
        t = s[TT]
        decided = s[PENDING] == 1  # r_t's decision is made: serve it without asking again
        if decided:
            if action[b]:
                s[PREF] += 1
                _load(t, k, prm, hints[b, t - L], slot_of[b], last[b], cnt[b], stamp[b], blk[b], s)
        s[PENDING] = 0
        while t < T:
            x = traces[b, t]
            if x < 0:
                t += 1
                continue
            y = hints[b, t - L] if t >= L else -1
            if y >= 0 and slot_of[b, y] < 0 and not decided:
                s[PENDING] = 1
                _observe(t, y, k, prm, hints[b], L, T, lam_fetch, slot_of[b], last[b], cnt[b], stamp[b], blk[b], s,
                         fs[b], ws[b], shift, obs[b])
                break
            decided = False
            if y >= 0:
                hit = 1 if y == x else 0
                s[RIGHT] += hit
                s[TOTAL] += 1
                fs[b, 0] += (hit - fs[b, 0]) * EMA_HINT
            f = _serve(t, x, k, prm, slot_of[b], last[b], cnt[b], stamp[b], blk[b], s)
            fs[b, 1] += (f - fs[b, 1]) * EMA_FAULT
            t += 1
        s[TT] = t
        if t >= T:
            s[DONE] = 1
        cost[b] = (s[FAULTS] - f0) + lam_fetch * (s[PREF] - p0) + lam_evict * (s[EVICTIONS] - e0)


class PrefetchEnv:
    """B lanes served together; each :meth:`step` advances every live lane to its next decision.

    Args:
        traces: int [B, T] (-1 pads).  hints: int [B, T] from :func:`gpupage.core.prefetch.make_hints` with
        lookahead ``L``.  K: cache size.  latent: the Zipf latent state (``mode='whitebox'`` needs it).
    """

    def __init__(self, traces, hints, L: int, K: int, lam_fetch: float = 0.3, lam_evict: float = 0.0,
                 mode: str = "blackbox", latent=None, options: dict | None = None):
        check_costs(lam_fetch, lam_evict, 1)
        check_hint_options(L, 0.0)
        limits.check_int("K", K, 1)
        nf = n_features(mode)
        if mode == "whitebox" and latent is None:
            raise ValueError("the white-box mode needs the generator's latent state (a Zipf family)")
        tr = torch.as_tensor(traces)
        self.traces = np.ascontiguousarray(tr.cpu().numpy(), dtype=np.int64)
        self.hints = np.ascontiguousarray(torch.as_tensor(hints).cpu().numpy(), dtype=np.int64)
        if self.traces.ndim != 2 or self.hints.shape != self.traces.shape:
            raise ValueError(f"traces and hints must both be [B, T], got {self.traces.shape} and {self.hints.shape}")
        B, T = self.traces.shape
        n_ids = int(max(self.traces.max(initial=0), self.hints.max(initial=0))) + 1
        limits.require(8 * B * (6 * n_ids + 2 * T), f"a prefetch env of {B} lanes over {n_ids} block ids")
        self.L, self.K, self.lam = int(L), int(K), np.array([lam_fetch, lam_evict], dtype=np.float64)
        self.prm = np.array(resolve_params(options), dtype=np.int64)
        if mode == "whitebox":
            self.ws, self.shift = np.ascontiguousarray(latent.working_sets.numpy(), dtype=np.int64), int(latent.shift)
        else:
            self.ws, self.shift = np.zeros((B, 1, 0), dtype=np.int64), 1
        self.n_ids = n_ids
        self.slot_of = np.full((B, n_ids), -1, dtype=np.int64)
        self.last = np.full((B, n_ids), FAR_PAST, dtype=np.int64)
        self.cnt = np.zeros((B, 2, n_ids), dtype=np.int64)
        self.stamp = np.full((B, 2, n_ids), -1, dtype=np.int64)
        self.blk = np.zeros((B, max(self.K, 1)), dtype=np.int64)
        self.sc = np.zeros((B, NSC), dtype=np.int64)
        self.fs = np.zeros((B, 2), dtype=np.float64)
        self.obs = np.zeros((B, nf), dtype=np.float32)
        self.cost = np.zeros(B, dtype=np.float64)
        self._clear(np.ones(B, dtype=bool))

    def _clear(self, lanes: np.ndarray) -> None:
        """Fresh state on ``lanes`` (bool [B]), served up to their first decisions."""
        for a, v in ((self.slot_of, -1), (self.last, FAR_PAST), (self.cnt, 0), (self.stamp, -1), (self.sc, 0),
                     (self.fs, 0.0)):
            a[lanes] = v
        self.sc[lanes, GEN1], self.sc[lanes, NEXTGEN] = 1, 2
        self.fs[lanes, 0] = 0.5
        self.step(np.where(lanes, 0, -1))

    def replace(self, lanes, traces, hints, latent=None) -> None:
        """Start new episodes on ``lanes`` (bool [B]) with ``traces``, ``hints`` [lanes.sum(), T] (and their
        latent state in white-box mode); the other lanes are left as they are."""
        lanes = np.asarray(lanes, dtype=bool)
        tr = np.asarray(torch.as_tensor(traces).cpu().numpy(), dtype=np.int64)
        hi = np.asarray(torch.as_tensor(hints).cpu().numpy(), dtype=np.int64)
        if tr.shape != (lanes.sum(), self.traces.shape[1]) or hi.shape != tr.shape:
            raise ValueError(f"replacement traces and hints must be [{lanes.sum()}, {self.traces.shape[1]}]")
        if max(tr.max(initial=0), hi.max(initial=0)) >= self.n_ids:
            raise ValueError(f"replacement block ids must be < {self.n_ids}")
        self.traces[lanes], self.hints[lanes] = tr, hi
        if self.ws.shape[2] > 0:
            self.ws[lanes] = latent.working_sets.numpy()
        self._clear(lanes)

    def step(self, action) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Apply ``action`` (int [B], 1 = prefetch; ignored on lanes with no decision due, -1 leaves a lane
        alone); returns
        (observations float32 [B, F] of the next decisions, rewards float64 [B] (minus the cost accrued),
        done bool [B])."""
        a = np.ascontiguousarray(torch.as_tensor(action).cpu().numpy(), dtype=np.int64)
        with limits.work_threads(len(a)):
            _step(self.traces, self.hints, self.L, self.K, self.prm, self.lam, a, self.slot_of, self.last, self.cnt,
                  self.stamp, self.blk, self.sc, self.fs, self.ws, self.shift, self.obs, self.cost)
        return torch.from_numpy(self.obs.copy()), torch.from_numpy(-self.cost), torch.from_numpy(self.done.copy())

    @property
    def done(self) -> np.ndarray:
        return self.sc[:, DONE].astype(bool)

    @property
    def pending(self) -> np.ndarray:
        """bool [B]: lanes waiting for a decision (before request ``t``)."""
        return self.sc[:, PENDING].astype(bool)

    @property
    def t(self) -> np.ndarray:
        """int64 [B]: each lane's next request."""
        return self.sc[:, TT].copy()

    def counts(self) -> dict:
        """int64 [B] each: faults, prefetches, evictions so far."""
        return {"faults": torch.from_numpy(self.sc[:, FAULTS].copy()),
                "prefetches": torch.from_numpy(self.sc[:, PREF].copy()),
                "evictions": torch.from_numpy(self.sc[:, EVICTIONS].copy())}
