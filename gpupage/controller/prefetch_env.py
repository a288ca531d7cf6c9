"""Prefetch env v2 (issue 13): a batched, event-driven env on the CPU where the controller decides every
prefetch AND picks every victim.  This docstring is the written specification; the Triton kernel
(``kernels.prefetch_env``) implements the same text and tests hold the two equal.

Serving follows :mod:`gpupage.core.prefetch` with ``adaptive``'s per-request state
(:func:`gpupage.zoo.heuristics.access`, run at every request exactly as ``gpupage.zoo.prefetching`` does); a
prefetch is not an access; cold fills take the lowest empty slot and evict nothing.

Decisions.  A lane pauses at its next decision, of one of two kinds:

* kind 0, prefetch: right before request t (t >= L) when y = h_{t-L} >= 0 is not resident; the
  observation is taken with the state after request t - 1.
* kind 1, victim: request t of block x faults on a FULL cache, after ``access(t, x, ...)`` has run (the
  state in which ``adaptive`` picks a fault's victim).  Faults on a non-full cache are cold fills.

A request may produce both: kind 0 before t, then, after its action, kind 1 if r_t faults on a full cache.

Action: two int64 [B]: ``prefetch`` in {0, 1} (read at kind 0; -1 leaves the lane untouched at either
kind) and ``victim`` in [-1, K): the slot to evict, -1 meaning ``adaptive``'s victim
(:func:`gpupage.zoo.heuristics.victim` with the state at the decision); read at kind 1, and at kind 0 when
prefetch = 1 and the cache is full.  Lanes with no decision due (done) ignore the action.  Values outside
those ranges are a one-line ValueError.

Reward: minus the cost accrued from the action to the next decision (faults + lam_fetch * prefetches +
lam_evict * evictions).  A fault is counted when r_t is found missing, so a kind-0 action's reward holds
r_t's fault and a kind-1 action's reward holds its eviction.

Integer state beside ``adaptive``'s: ``right``/``total`` (hints h_{t-L} >= 0 scored against r_t when r_t
is served); ``rel_ema`` (units of 2**-16, starts at 2**15): at each scored hint ``rel_ema += ((hit << 16) -
rel_ema) >> 5``; ``fault_ema`` (units of 2**-16, starts at 0): at each served request, as soon as its fault
f is known (before a kind-1 pause), ``fault_ema += ((f << 16) - fault_ema) >> 6`` (flooring shifts).

Raw observation, integers, identical on every backend.  ``obs_global`` int64 [B, NG], NG = 12 (+2 in
white-box mode): 0 kind; 1 t; 2 right; 3 total; 4 rel_ema; 5 fault_ema; 6 cache full (filled >= K);
7 the subject's last access before request t (FAR_PAST if never; the subject is y at kind 0, x at kind 1,
whose previous last access is kept from before ``access`` ran); 8 the subject's ``adaptive`` epoch count
(cnt[cur, subject] if its stamp is the epoch generation gen0, else 0); 9 how many of h_{t-L+1..t-1} name the
subject; 10 ``adaptive``'s victim slot (-1 at kind 0 on a non-full cache); 11 L; white-box: 12 the subject
is in the current working set (phase t // shift), 13 its rank in it (W if not in it).
``obs_slots`` int64 [B, K, NS], NS = 4, for each filled slot s holding block b (zeros beyond): 0 last[b];
1 ``adaptive``'s in-window count (cnt[cur, b] if its stamp is gen0 and last[b] >= t - stale, else 0);
2 protected (``victim`` would add PROTECT); 3 how many of h_{t-L+1..t-1} name b.
A done lane's observation is left as it was.

Features (:func:`prefetch_features`, torch, shared by both backends) are T-independent: see there.

Backends: ``cpu`` (numba, below) and ``triton`` (:mod:`kernels.prefetch_env`, on the traces' device: state,
observations and rewards stay there: a rollout syncs only where it reads them, e.g. ``done``; actions given
on the device are range-checked by the kernel and an error raises at the next ``done`` or ``counts()``).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from ..core import limits
from ..core.cpu import evict, place
from ..core.prefetch import check_costs, check_hint_options
from ..zoo.heuristics import FAR_PAST, access, resolve_params, victim

GLOBAL_COLUMNS = ("kind", "t", "right", "total", "rel_ema", "fault_ema", "cache_full", "subject_last",
                  "subject_count", "subject_again", "adaptive_victim", "L")
WHITEBOX_COLUMNS = ("subject_in_working_set", "subject_rank")
SLOT_COLUMNS = ("last", "count", "protected", "announced")
MODES = ("blackbox", "whitebox")
NS = len(SLOT_COLUMNS)
ONE = 1 << 16  # the EMAs' unit
RECENCY_SCALE = float(np.log1p(2.0 ** 20))

# per-lane integer state, columns of ``sc``
TT, GEN0, GEN1, NEXTGEN, CUR, SS, RESUME, NN, FAULTS, PREF, EVICTIONS, RIGHT, TOTAL, PENDING, DONE, REL, FEMA = range(17)
NSC = 17
NONE, KIND0, KIND1 = 0, 1, 2  # PENDING: no decision due, a prefetch decision, a victim decision


def n_global(mode: str) -> int:
    if mode not in MODES:
        raise ValueError(f"unknown feature mode {mode!r}; choose from {', '.join(MODES)}")
    return len(GLOBAL_COLUMNS) + (len(WHITEBOX_COLUMNS) if mode == "whitebox" else 0)


@njit(inline="always", cache=True)
def _clock(sc):
    """``adaptive``'s clock (see :func:`gpupage.zoo.heuristics.access`) as the lane's state holds it."""
    return sc[GEN0], sc[GEN1], sc[NEXTGEN], sc[CUR], sc[SS], sc[RESUME]


@njit(cache=True)
def _put(t, k, prm, x, v, slot_of, last, cnt, stamp, blk, sc):
    """Bring x into the lowest free slot, or into slot v (``adaptive``'s victim when v < 0) of a full cache."""
    if sc[NN] < k:
        s = sc[NN]
        sc[NN] += 1
    else:
        s = v if v >= 0 else victim(t, k, prm, blk, last, cnt, stamp, _clock(sc))
        evict(slot_of, blk, s)
        sc[EVICTIONS] += 1
    place(slot_of, blk, s, x)


@njit(inline="always", cache=True)
def _announced(hint, t, L, b):
    c = 0
    for j in range(max(t - L + 1, 0), t):
        if hint[j] == b:
            c += 1
    return c


@njit(cache=True)
def _observe(kind, t, subj, subj_last, k, prm, hint, L, slot_of, last, cnt, stamp, blk, sc, ws, shift, og, os_):
    cur, gen0, gen1, S = sc[CUR], sc[GEN0], sc[GEN1], sc[SS]
    stale, suspect = prm[5], prm[6]
    full = sc[NN] >= k
    og[0] = kind
    og[1] = t
    og[2] = sc[RIGHT]
    og[3] = sc[TOTAL]
    og[4] = sc[REL]
    og[5] = sc[FEMA]
    og[6] = 1 if full else 0
    og[7] = subj_last
    og[8] = cnt[cur, subj] if stamp[cur, subj] == gen0 else 0
    og[9] = _announced(hint, t, L, subj)
    og[10] = victim(t, k, prm, blk, last, cnt, stamp, _clock(sc)) if full else -1
    og[11] = L
    W = ws.shape[1]
    if og.shape[0] > 12:
        ph = min(t // shift, ws.shape[0] - 1)
        og[12] = 0
        og[13] = W
        for r in range(W):
            if ws[ph, r] == subj:
                og[12] = 1
                og[13] = r
    for s in range(k):
        if s < sc[NN]:
            b = blk[s]
            os_[s, 0] = last[b]
            os_[s, 1] = cnt[cur, b] if stamp[cur, b] == gen0 and last[b] >= t - stale else 0
            os_[s, 2] = 1 if S >= suspect and stamp[1 - cur, b] == gen1 else 0
            os_[s, 3] = _announced(hint, t, L, b)
        else:
            for c in range(os_.shape[1]):
                os_[s, c] = 0


@njit(parallel=True, cache=True)
def _step(traces, hints, L, k, prm, lam, pf, vi, slot_of, last, cnt, stamp, blk, sc, ws, shift, og, os_, cost):
    B, T = traces.shape
    lam_fetch, lam_evict = lam[0], lam[1]
    for b in prange(B):
        cost[b] = 0.0
        s = sc[b]
        if s[DONE] or pf[b] < 0:  # -1: leave the lane as it is
            continue
        f0, p0, e0 = s[FAULTS], s[PREF], s[EVICTIONS]
        t = s[TT]
        pending = s[PENDING]
        s[PENDING] = NONE
        decided = False  # request t's prefetch decision is made: serve it without asking again
        if pending == KIND0:
            decided = True
            if pf[b] == 1:
                s[PREF] += 1
                _put(t, k, prm, hints[b, t - L], vi[b], slot_of[b], last[b], cnt[b], stamp[b], blk[b], s)
        elif pending == KIND1:
            _put(t, k, prm, traces[b, t], vi[b], slot_of[b], last[b], cnt[b], stamp[b], blk[b], s)
            t += 1
        while t < T:
            x = traces[b, t]
            if x < 0:
                t += 1
                continue
            y = hints[b, t - L] if t >= L else -1
            if y >= 0 and slot_of[b, y] < 0 and not decided:
                s[PENDING] = KIND0
                _observe(0, t, y, last[b, y], k, prm, hints[b], L, slot_of[b], last[b], cnt[b], stamp[b], blk[b], s,
                         ws[b], shift, og[b], os_[b])
                break
            decided = False
            if y >= 0:
                hit = 1 if y == x else 0
                s[RIGHT] += hit
                s[TOTAL] += 1
                s[REL] += ((hit << 16) - s[REL]) >> 5
            prev = last[b, x]
            s[GEN0], s[GEN1], s[NEXTGEN], s[CUR], s[SS], s[RESUME] = access(t, x, prm, last[b], cnt[b], stamp[b],
                                                                            _clock(s))
            f = 1 if slot_of[b, x] < 0 else 0
            s[FEMA] += ((f << 16) - s[FEMA]) >> 6
            if f:
                s[FAULTS] += 1
                if s[NN] >= k:
                    s[PENDING] = KIND1
                    _observe(1, t, x, prev, k, prm, hints[b], L, slot_of[b], last[b], cnt[b], stamp[b], blk[b], s,
                             ws[b], shift, og[b], os_[b])
                    break
                place(slot_of[b], blk[b], s[NN], x)
                s[NN] += 1
            t += 1
        s[TT] = t
        if t >= T:
            s[DONE] = 1
        cost[b] = (s[FAULTS] - f0) + lam_fetch * (s[PREF] - p0) + lam_evict * (s[EVICTIONS] - e0)


@njit(parallel=True, cache=True)
def _next_use(traces, tt, blk, nn, out):
    B, T = traces.shape
    for b in prange(B):
        for s in range(blk.shape[1]):
            out[b, s] = T
            if s < nn[b]:
                for j in range(tt[b], T):
                    if traces[b, j] == blk[b, s]:
                        out[b, s] = j
                        break


def _ints(a, name) -> np.ndarray:
    out = np.ascontiguousarray(torch.as_tensor(a).cpu().numpy())
    if out.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got {out.dtype}")
    return out.astype(np.int64, copy=False)


class PrefetchEnv:
    """B lanes served together; each :meth:`step` advances every live lane to its next decision.

    Args:
        traces: int [B, T] (-1 pads).  hints: int [B, T] from :func:`gpupage.core.prefetch.make_hints` with
        lookahead ``L``.  K: cache size.  latent: the Zipf latent state (``mode='whitebox'`` needs it).
        backend: ``cpu``, ``triton`` (CUDA traces, or CPU ones under TRITON_INTERPRET=1) or ``auto`` (triton
        for CUDA traces).
    The raw observations of the pending decisions are ``obs_global`` / ``obs_slots`` (numpy, see the
    module docstring; on the triton backend they, ``done``, ``pending``, ``kind``, ``t`` and the counts are
    torch tensors on the traces' device); :func:`prefetch_features` turns them into the network's inputs.
    """

    def __init__(self, traces, hints, L: int, K: int, lam_fetch: float = 0.3, lam_evict: float = 0.0,
                 mode: str = "blackbox", latent=None, options: dict | None = None, backend: str = "auto"):
        check_costs(lam_fetch, lam_evict, 1)
        check_hint_options(L, 0.0)
        limits.check_int("K", K, 1)
        ng = n_global(mode)
        if mode == "whitebox" and latent is None:
            raise ValueError("the white-box mode needs the generator's latent state (a Zipf family)")
        self.traces = _ints(traces, "traces")
        self.hints = _ints(hints, "hints")
        if self.traces.ndim != 2 or self.hints.shape != self.traces.shape:
            raise ValueError(f"traces and hints must both be [B, T], got {self.traces.shape} and {self.hints.shape}")
        B, T = self.traces.shape
        n_ids = int(max(self.traces.max(initial=0), self.hints.max(initial=0))) + 1
        limits.require(8 * B * (6 * n_ids + 2 * T), f"a prefetch env of {B} lanes over {n_ids} block ids")
        self.L, self.K, self.lam = int(L), int(K), np.array([lam_fetch, lam_evict], dtype=np.float64)
        self.lam_fetch = float(lam_fetch)
        self.prm = np.array(resolve_params(options), dtype=np.int64)
        if mode == "whitebox":
            self.ws, self.shift = np.ascontiguousarray(latent.working_sets.numpy(), dtype=np.int64), int(latent.shift)
        else:
            self.ws, self.shift = np.zeros((B, 1, 0), dtype=np.int64), 1
        self.n_ids = n_ids
        if backend not in ("auto", "cpu", "triton"):
            raise ValueError(f"unknown backend {backend!r}; choose from auto, cpu, triton")
        self._dev = None
        if backend == "triton" or (backend == "auto" and torch.as_tensor(traces).is_cuda):
            from kernels.prefetch_env import new_state

            dev = torch.as_tensor(traces).device
            self._dev = new_state(torch.from_numpy(self.traces).to(dev), torch.from_numpy(self.hints).to(dev), self.L,
                                  self.K, torch.from_numpy(self.ws).to(dev) if mode == "whitebox" else None,
                                  self.shift, options)
            self.obs_global, self.obs_slots = self._dev.obs_global, self._dev.obs_slots  # updated in place
            self._clear(torch.ones(B, dtype=torch.bool, device=dev))
            return
        self.slot_of = np.full((B, n_ids), -1, dtype=np.int64)
        self.last = np.full((B, n_ids), FAR_PAST, dtype=np.int64)
        self.cnt = np.zeros((B, 2, n_ids), dtype=np.int64)
        self.stamp = np.full((B, 2, n_ids), -1, dtype=np.int64)
        self.blk = np.zeros((B, self.K), dtype=np.int64)
        self.sc = np.zeros((B, NSC), dtype=np.int64)
        self.obs_global = np.zeros((B, ng), dtype=np.int64)
        self.obs_slots = np.zeros((B, self.K, NS), dtype=np.int64)
        self.cost = np.zeros(B, dtype=np.float64)
        self._clear(np.ones(B, dtype=bool))

    def _clear(self, lanes: np.ndarray) -> None:
        """Fresh state on ``lanes`` (bool [B]), served up to their first decisions."""
        if self._dev is not None:
            from kernels.prefetch_env import prefetch_env_step, reset_lanes

            reset_lanes(self._dev, lanes)
            prefetch_env_step(self._dev, torch.where(lanes, 0, -1), torch.full_like(lanes, -1, dtype=torch.int64))
            return
        for a, v in ((self.slot_of, -1), (self.last, FAR_PAST), (self.cnt, 0), (self.stamp, -1), (self.sc, 0),
                     (self.obs_global, 0), (self.obs_slots, 0)):
            a[lanes] = v
        self.sc[lanes, GEN1], self.sc[lanes, NEXTGEN], self.sc[lanes, REL] = 1, 2, ONE // 2
        self._run(np.where(lanes, 0, -1), np.full(len(lanes), -1))

    def replace(self, lanes, traces, hints, latent=None) -> None:
        """Start new episodes on ``lanes`` (bool [B]) with ``traces``, ``hints`` [lanes.sum(), T] (and their
        latent state in white-box mode); the other lanes are left as they are."""
        lanes = np.asarray(torch.as_tensor(lanes).cpu(), dtype=bool)
        tr, hi = _ints(traces, "traces"), _ints(hints, "hints")
        if tr.shape != (lanes.sum(), self.traces.shape[1]) or hi.shape != tr.shape:
            raise ValueError(f"replacement traces and hints must be [{lanes.sum()}, {self.traces.shape[1]}]")
        if max(tr.max(initial=0), hi.max(initial=0)) >= self.n_ids:
            raise ValueError(f"replacement block ids must be < {self.n_ids}")
        if self._dev is not None:
            from kernels.prefetch_env import reset_lanes

            lanes = torch.from_numpy(lanes).to(self._dev.st.device)
            reset_lanes(self._dev, lanes, torch.from_numpy(tr), torch.from_numpy(hi),
                        latent.working_sets if self.ws.shape[2] > 0 else None)
            self._clear(lanes)
            return
        self.traces[lanes], self.hints[lanes] = tr, hi
        if self.ws.shape[2] > 0:
            self.ws[lanes] = latent.working_sets.numpy()
        self._clear(lanes)

    def _run(self, pf: np.ndarray, vi: np.ndarray) -> None:
        with limits.work_threads(len(pf)):
            _step(self.traces, self.hints, self.L, self.K, self.prm, self.lam, pf, vi, self.slot_of, self.last,
                  self.cnt, self.stamp, self.blk, self.sc, self.ws, self.shift, self.obs_global, self.obs_slots,
                  self.cost)

    def step(self, prefetch, victim=None):
        """Apply the action (int [B] each; ``victim`` defaults to -1, ``adaptive``'s, everywhere); returns
        (obs_global int64 [B, NG], obs_slots int64 [B, K, NS] of the next decisions, rewards float64 [B]
        (minus the cost accrued), done bool [B]) as torch tensors."""
        if self._dev is not None:
            from kernels.prefetch_env import prefetch_env_step

            vi = torch.full_like(self._dev.st[0], -1, dtype=torch.int64) if victim is None else victim
            og, os_, acc, done = prefetch_env_step(self._dev, prefetch, vi)
            acc = acc.double()  # the numba env's float64 sum, term by term
            lam_fetch, lam_evict = float(self.lam[0]), float(self.lam[1])
            return og.clone(), os_.clone(), -(acc[:, 0] + lam_fetch * acc[:, 1] + lam_evict * acc[:, 2]), done
        pf = _ints(prefetch, "prefetch").reshape(-1)
        B = self.traces.shape[0]
        vi = np.full(B, -1, dtype=np.int64) if victim is None else _ints(victim, "victim").reshape(-1)
        if len(pf) != B or len(vi) != B:
            raise ValueError(f"prefetch and victim must be [{B}], got {len(pf)} and {len(vi)}")
        if ((pf < -1) | (pf > 1)).any():
            raise ValueError(f"prefetch actions must be -1, 0 or 1, got {int(pf[(pf < -1) | (pf > 1)][0])}")
        if ((vi < -1) | (vi >= self.K)).any():
            raise ValueError(f"victim slots must be in [-1, {self.K}), got {int(vi[(vi < -1) | (vi >= self.K)][0])}")
        self._run(np.ascontiguousarray(pf), np.ascontiguousarray(vi))
        return (torch.from_numpy(self.obs_global.copy()), torch.from_numpy(self.obs_slots.copy()),
                torch.from_numpy(-self.cost), torch.from_numpy(self.done.copy()))

    def _row(self, name: str) -> torch.Tensor:
        from kernels.prefetch_env import ROWS

        return self._dev.st[ROWS.index(name)].long()

    @property
    def done(self) -> np.ndarray:
        if self._dev is not None:
            self._dev.check()  # out-of-range actions given on the device raise here, where the caller syncs
            return self._dev.done.clone()
        return self.sc[:, DONE].astype(bool)

    @property
    def pending(self) -> np.ndarray:
        """bool [B]: lanes waiting for a decision."""
        return self._row("pend") >= 0 if self._dev is not None else self.sc[:, PENDING] != NONE

    @property
    def kind(self) -> np.ndarray:
        """int64 [B]: the pending decision's kind (0 prefetch, 1 victim; -1 none)."""
        return self._row("pend") if self._dev is not None else self.sc[:, PENDING] - 1

    @property
    def t(self) -> np.ndarray:
        """int64 [B]: each lane's current request (the one the pending decision is about)."""
        return self._row("t") if self._dev is not None else self.sc[:, TT].copy()

    def next_use(self) -> torch.Tensor:
        """int64 [B, K]: the next request (>= t) of each slot's block, T if none or the slot is empty: the
        future, for imitation labels only (Belady's victim is the argmax), never an observation."""
        if self._dev is not None:
            raise ValueError("next_use (imitation labels) runs on the cpu backend")
        out = np.empty((self.traces.shape[0], self.K), dtype=np.int64)
        with limits.work_threads(len(out)):
            _next_use(self.traces, self.sc[:, TT].copy(), self.blk, self.sc[:, NN].copy(), out)
        return torch.from_numpy(out)

    def counts(self) -> dict:
        """int64 [B] each: faults, prefetches, evictions so far."""
        if self._dev is not None:
            self._dev.check()
            return {name: self._row(name) for name in ("faults", "prefetches", "evictions")}
        return {"faults": torch.from_numpy(self.sc[:, FAULTS].copy()),
                "prefetches": torch.from_numpy(self.sc[:, PREF].copy()),
                "evictions": torch.from_numpy(self.sc[:, EVICTIONS].copy())}


def _recency(t, last):
    """log1p(t - last) / log1p(2**20) in [0, 1]; 1 for a block never requested."""
    r = torch.log1p((t - last).clamp(min=0).float()) / RECENCY_SCALE
    return torch.where(last == FAR_PAST, torch.ones_like(r), r.clamp(0, 1))


def n_features(mode: str) -> tuple[int, int]:
    """(global, per-slot) feature widths of :func:`prefetch_features`."""
    return 13 + 2 * (n_global(mode) > len(GLOBAL_COLUMNS)), 6


def prefetch_features(obs_global: torch.Tensor, obs_slots: torch.Tensor, lam_fetch: float, K: int):
    """The network's inputs from the raw observations: (g float32 [B, F], s float32 [B, K, 6]).

    Global: kind, cache full, hint reliability (right + 1) / (total + 2), rel_ema and fault_ema / 2**16, the
    subject's recency, seen-before and count, its recurrence among the hints out / max(L - 1, 1), lam_fetch,
    and ``adaptive``'s victim's recency, count and protection (zeros when there is none); white-box adds the
    subject in the working set and log1p(rank) / 5.  Per slot: recency, count, protected, announced /
    max(L - 1, 1), is ``adaptive``'s victim, valid (filled; see below).  Recencies are log1p(t - last) / log1p(2**20)
    clipped to [0, 1], counts log1p(c) / 5: nothing depends on the trace length T.
    """
    og = obs_global.long()
    osl = obs_slots.long()
    B = og.shape[0]
    t = og[:, 1:2]
    L1 = (og[:, 11:12] - 1).clamp(min=1).float()
    rec = _recency(t, osl[:, :, 0])
    cntf = torch.log1p(osl[:, :, 1].float()) / 5
    av = og[:, 10]
    slot_ids = torch.arange(K, device=og.device).expand(B, K)
    is_av = (slot_ids == av[:, None]).float()
    # full cache: every slot; otherwise a slot with any nonzero column (a block last requested at t = 0 with
    # nothing else to show reads as empty, only on a non-full cache, where no victim is read)
    valid = ((og[:, 6:7] == 1) | (osl != 0).any(-1)).float()
    s = torch.stack([rec * valid, cntf, osl[:, :, 2].float(), osl[:, :, 3].float() / L1, is_av, valid], dim=-1)
    vic = (s[:, :, :3] * is_av[:, :, None]).sum(1)
    g = [og[:, 0:1].float(), og[:, 6:7].float(), ((og[:, 2] + 1).float() / (og[:, 3] + 2).float())[:, None],
         og[:, 4:6].float() / ONE, _recency(t, og[:, 7:8]), (og[:, 7:8] != FAR_PAST).float(),
         torch.log1p(og[:, 8:9].float()) / 5, og[:, 9:10].float() / L1,
         torch.full((B, 1), float(lam_fetch), device=og.device), vic]
    if og.shape[1] > len(GLOBAL_COLUMNS):
        g += [og[:, 12:13].float(), torch.log1p(og[:, 13:14].float()) / 5]
    return torch.cat(g, dim=1), s
