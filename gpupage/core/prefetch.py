"""Prefetching (issue 13): hints, the serving loop with prefetches, its costs, OPT and the lookahead oracle.

The model is written once in :mod:`gpupage.core.policies` ("Prefetching"); this module is its CPU path for
the scoring evictions (LRU, LFU, FIFO) and the lookahead oracle.  ``adaptive`` eviction lives in
:mod:`gpupage.zoo.prefetching` (named in ``OTHER_LOOPS``), the plain-Python reference in
:mod:`gpupage.zoo.prefetch_reference`, the Triton kernel (every eviction here and the oracle) in
:mod:`kernels.prefetch`.

Every rule is a per-step *target*: ``targets[b, t - off]`` is the block a rule prefetches right before request
t >= off (-1: none), built from what the rule may know before t is revealed (the offset lets follow_hint
read its hints in place):

* ``follow_hint``: the hints themselves with ``off = L``: h_{t-L}, the hint announcing r_t (known: t - L <= t - 1);
* ``next_in_call``: ``targets[t] = r_t`` when request t continues the call of request t - 1 (a server
  knows a prompt's block list once the call arrives), else -1;
* ``lookahead``: ``targets[t] = r_t`` when the oracle's window L >= 1 (it knows r_t .. r_{t+L-1});
* ``never``: no targets (today's demand paging).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange

from . import limits, rng
from .cpu import NEVER, SHIFT, argmin_key, evict, lane_chunks, lane_next_uses, max_k, place, release
from .policies import FIFO, LFU, LRU, PREFETCH_RULES, get_policy

RULES = PREFETCH_RULES
ORACLE = -1  # eviction code of the lookahead oracle (not a registry policy)
OWN_LOOP = {"lru": LRU, "lfu": LFU, "fifo": FIFO}
"""Evictions served by this module's loop; ``adaptive`` has its own (below)."""
OTHER_LOOPS = {"adaptive": "gpupage.zoo.prefetching:serve_cpu"}
TRITON = "kernels.prefetch:serve"
TRITON_EVICTIONS = ("lru", "lfu", "fifo", "adaptive")
"""Evictions the Triton kernel serves, with every rule; it serves the lookahead oracle too."""


def check_costs(lam_fetch: float, lam_evict: float, P: int) -> None:
    """One-line ValueErrors for the cost weights and the prefetch budget."""
    if not (isinstance(lam_fetch, (int, float)) and 0 < lam_fetch <= 1):
        raise ValueError(f"lambda_fetch must be in (0, 1], got {lam_fetch}")
    if not (isinstance(lam_evict, (int, float)) and lam_evict >= 0 and math.isfinite(lam_evict)):
        raise ValueError(f"lambda_evict must be a finite number >= 0, got {lam_evict}")
    if isinstance(P, bool) or not isinstance(P, (int, np.integer)) or P < 0:
        raise ValueError(f"prefetches per step P must be an integer >= 0, got {P}")


def check_hint_options(L: int, eps: float) -> None:
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"hint lookahead L must be an integer >= 1, got {L}")
    if not (isinstance(eps, (int, float)) and 0 <= eps <= 1):
        raise ValueError(f"hint noise epsilon must be in [0, 1], got {eps}")


# ------------------------------------------------------------------------------------------------ hints

@njit(parallel=True, cache=True)
def _hints_kernel(traces, keys, L, threshold, n_ids, out):
    B, T = traces.shape
    for b in prange(B):
        nkey = rng.stream_key(keys[b], rng.STREAM_HINT)
        vkey = rng.stream_key(keys[b], rng.STREAM_HINT_VALUE)
        for t in range(T):
            j = t + L
            if j >= T or traces[b, j] < 0:
                out[b, t] = -1
            elif rng.draw(nkey, t) < threshold:
                out[b, t] = rng.uniform_below(rng.draw(vkey, t), n_ids)
            else:
                out[b, t] = traces[b, j]


def make_hints(traces, L: int, eps: float, n_ids: int, seed=0) -> torch.Tensor:
    """Hints int32 ``[B, T]``: h_t = r_{t+L} with probability 1 - eps, else a uniform block of [0, n_ids).

    ``n_ids`` is the lane's block universe: the family's M on Zipf traces, the file's distinct blocks on a
    file trace (its dense ids).  h_t = -1 where t + L is past the end or a pad.  Drawn with the
    counter-based RNG (streams ``STREAM_HINT``, ``STREAM_HINT_VALUE``, position t), so they depend only on
    (seed, lane, t); every backend reads these same hints.
    """
    check_hint_options(L, eps)
    if not 1 <= n_ids <= limits.MAX_BLOCKS:
        raise ValueError(f"hint universe must hold 1 to {limits.MAX_BLOCKS} blocks, got {n_ids}")
    arr = torch.as_tensor(traces)
    if arr.dim() == 1:
        arr = arr.unsqueeze(0)
    arr = arr.detach().cpu().contiguous().numpy()
    if arr.size and int(arr.max()) >= n_ids:
        raise ValueError(f"trace holds block {int(arr.max())} outside the hint universe [0, {n_ids})")
    keys = rng.lane_keys(seed, arr.shape[0])
    out = np.empty(arr.shape, dtype=np.int32)  # ids < MAX_BLOCKS = 2**31, like the traces
    # eps = 1 must noise every hint: the largest threshold a 32-bit draw can fall under
    thr = rng.probability_threshold(eps) if eps < 1 else 1 << 32
    with limits.work_threads(arr.shape[0]):
        _hints_kernel(arr, keys, L, thr, n_ids, out)
    return torch.from_numpy(out)


def full_targets(targets, off: int, T: int) -> torch.Tensor:
    """int64 ``[B, T]`` on the targets' device: the block prefetched right before each request (-1: none)."""
    out = torch.full((targets.shape[0], T), -1, dtype=torch.int64, device=targets.device)
    if off < T:
        out[:, off:] = targets[:, :T - off]
    return out


def call_targets(traces, pos_in_call) -> torch.Tensor:
    """next_in_call's targets, int64: r_t where request t continues its call (``pos_in_call[t] > 0``)."""
    tr = _as_2d(traces)
    pos = _as_2d(pos_in_call).to(tr.device)
    if pos.shape[1] != tr.shape[1]:
        raise ValueError(f"pos_in_call has {pos.shape[1]} positions for a trace of {tr.shape[1]} requests")
    return torch.where((pos > 0) & (tr >= 0), tr, -1).to(torch.int64).expand(tr.shape)


# ------------------------------------------------------------------------------------------ the loop

@njit(inline="always", cache=True)
def _slot_key(code, last_plus1, c, order):
    """A slot's eviction key, smallest first: (priority, last access + 1) packed as the CPU path packs it;
    ties left go to the first slot."""
    if code == LRU:
        return last_plus1
    if code == LFU:
        return c * SHIFT + last_plus1
    return order  # FIFO: 2t for a prefetch before t, 2t + 1 for a fault at t


@njit(inline="always", cache=True)
def _oracle_victim(t, L, W, k, blk, last, nu, rank):
    """The first slot of the smallest (class and rank or next use, last access + 1): see RULES."""
    best_s = 0
    best_p = np.int64(0)
    best_q = np.int64(0)
    for s in range(k):
        b = blk[s]
        q = last[b] + 1
        if nu[s] >= t + L:  # not needed in the window: outside the working set first
            p = np.int64(W - rank[b])
        else:  # needed in the window: after every other block, farthest next use first
            p = np.int64(W + 1 + NEVER) - nu[s]
        if s == 0 or p < best_p or (p == best_p and q < best_q):
            best_s, best_p, best_q = s, p, q
    return best_s


@njit(cache=True)
def _serve_lane(trace, target, off, k, code, L, ws, shift, slot_of, last, count, rank, seen, blk, keys, nu, nxt):
    T = trace.shape[0]
    W = ws.shape[1]
    if code == ORACLE:
        lane_next_uses(trace, seen, nxt)
    n = 0
    faults = 0
    prefetches = 0
    evictions = 0
    phase = -1
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        if W > 0 and t // shift != phase:  # the oracle's ranks: the working set of t's phase
            if phase >= 0:
                for r in range(W):
                    rank[ws[phase, r]] = W
            phase = t // shift
            for r in range(W):
                rank[ws[phase, r]] = r
        y = target[t - off] if t >= off else -1
        if y >= 0 and slot_of[y] < 0:
            prefetches += 1
            if n < k:
                s = n
                n += 1
            else:
                s = _oracle_victim(t, L, W, k, blk, last, nu, rank) if code == ORACLE else argmin_key(keys, k)
                evict(slot_of, blk, s)
                evictions += 1
            place(slot_of, blk, s, y)
            keys[s] = _slot_key(code, last[y] + 1, count[y], 2 * t)  # not an access: its old state
            nu[s] = t if y == x else NEVER  # read by the oracle only, whose targets are r_t
        if code == LFU:
            count[x] += 1
        s = slot_of[x]
        if s < 0:
            faults += 1
            if n < k:
                s = n
                n += 1
            else:
                s = _oracle_victim(t, L, W, k, blk, last, nu, rank) if code == ORACLE else argmin_key(keys, k)
                evict(slot_of, blk, s)
                evictions += 1
            place(slot_of, blk, s, x)
            keys[s] = 2 * t + 1  # FIFO's order; an access below rewrites the others' keys
        last[x] = t
        if code == LRU or code == LFU:
            keys[s] = _slot_key(code, t + 1, count[x], 0)
        elif code == ORACLE:
            nu[s] = nxt[t]
    release(slot_of, blk, n)  # the other scratch too is left clean for the next lane
    for t in range(T):
        x = trace[t]
        if x >= 0:
            last[x] = -1
            count[x] = 0
    if phase >= 0:
        for r in range(W):
            rank[ws[phase, r]] = W
    return faults, prefetches, evictions


@njit(parallel=True, cache=True)
def _serve_batch(traces, targets, off, K, code, L, ws, shift, n_ids, out, nchunks):
    B, T = traces.shape
    kmax = max_k(K)
    W = ws.shape[2]
    for c in prange(nchunks):
        slot_of = np.full(n_ids, -1, dtype=np.int64)
        last = np.full(n_ids, -1, dtype=np.int64)
        count = np.zeros(n_ids, dtype=np.int64)
        rank = np.full(n_ids, W, dtype=np.int64)
        seen = np.full(n_ids, NEVER, dtype=np.int64)
        blk = np.empty(kmax, dtype=np.int64)
        keys = np.zeros(kmax, dtype=np.int64)
        nu = np.zeros(kmax, dtype=np.int64)
        nxt = np.full(T if code == ORACLE else 1, NEVER, dtype=np.int64)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            f, p, e = _serve_lane(traces[b], targets[b], off, min(K[b], kmax), code, L, ws[b if W else 0], shift,
                                  slot_of, last, count, rank, seen, blk, keys, nu, nxt)
            out[b, 0] = f
            out[b, 1] = p
            out[b, 2] = e


def serve_cpu(traces: np.ndarray, targets: np.ndarray, off: int, K: np.ndarray, code: int, L: int, n_ids: int,
              ws: np.ndarray | None = None, shift: int = 1) -> np.ndarray:
    """int64 [B, 3] (faults, prefetches, evictions) of each lane served with its targets (``targets[b, t - off]``
    before request t >= off).

    ``code``: LRU, LFU, FIFO or ORACLE (window L, ranks from ``ws`` [B, phases, W] of ``shift`` requests).
    """
    if ws is None:
        ws = np.zeros((1, 1, 0), dtype=np.int64)
    out = np.empty((traces.shape[0], 3), dtype=np.int64)
    with limits.work_threads(traces.shape[0]):
        _serve_batch(traces, targets, off, K, code, L, np.ascontiguousarray(ws, dtype=np.int64), max(shift, 1),
                     max(n_ids, 1), out, lane_chunks(traces.shape[0]))
    return out


# ----------------------------------------------------------------------------------- the entry point

@dataclass
class PrefetchResult:
    faults: torch.Tensor
    """int64 [B]: demand fetches (the agent stalls); compulsory ones included."""
    prefetches: torch.Tensor
    """int64 [B]: blocks brought in by a prefetch (a no-op prefetch of a resident block is not one)."""
    evictions: torch.Tensor
    """int64 [B]: blocks removed to make room, by faults and prefetches alike (cold fills evict nothing)."""
    requests: torch.Tensor
    """int64 [B]: non-pad requests."""
    lam_fetch: float = 1.0
    lam_evict: float = 0.0

    @property
    def cost(self) -> torch.Tensor:
        """float64 [B]: faults + lam_fetch * prefetches + lam_evict * evictions (Eq. 7, fault loss 1)."""
        return self.faults.double() + self.lam_fetch * self.prefetches.double() + self.lam_evict * self.evictions.double()

    @property
    def loads(self) -> torch.Tensor:
        """int64 [B]: blocks brought in, by faults and prefetches."""
        return self.faults + self.prefetches


def simulate_prefetch(traces, K, rule: str = "never", eviction: str | None = "lru", *, hints=None, L: int = 0,
                      pos_in_call=None, latent=None, P: int = 1, lam_fetch: float = 1.0, lam_evict: float = 0.0,
                      options: dict | None = None, backend: str = "auto") -> PrefetchResult:
    """Serve B traces with a prefetching rule (``RULES``) and an eviction policy; per-lane counts and costs.

    Args:
        traces: integer ``[B, T]`` (or ``[T]``) block ids, -1 pads.  K: int or int ``[B]``.
        rule: ``never``, ``follow_hint`` (needs ``hints`` from :func:`make_hints` and their ``L``),
            ``next_in_call`` (needs ``pos_in_call`` ``[B, T]`` or ``[T]``, the Mooncake meta) or
            ``lookahead`` (window ``L >= 0``; ``latent``, a :class:`~gpupage.core.traces.ZipfLatent`, gives
            it the working set's ranks, else blocks outside the window go in LRU order).
        eviction: ``lru``, ``lfu``, ``fifo`` or ``adaptive`` with a prefetching rule; any registry policy
            with ``never``; None with ``lookahead`` (it evicts by its own rule).
        P: prefetches allowed per step; every rule here issues at most one (just in time), P = 0 turns
            prefetching off.  lam_fetch in (0, 1], lam_evict >= 0: the cost weights.
        backend: ``auto`` (the Triton kernel for CUDA tensors where it serves the eviction, else the CPU
            path; results come back on the traces' device), ``cpu`` or ``triton`` (CPU tensors only under
            TRITON_INTERPRET=1).  Hints are drawn on the host either way.
    """
    from .simulate import _lane_requests, _per_lane_k, as_traces, first_touches, simulate

    check_costs(lam_fetch, lam_evict, P)
    if rule not in RULES:
        raise ValueError(f"unknown prefetch rule {rule!r}; choose from {', '.join(RULES)}")
    if (rule == "lookahead") != (eviction is None):
        raise ValueError("the lookahead oracle evicts by its own rule: pass eviction=None with it, and only with it")
    tr = as_traces(traces)
    B, T = tr.shape
    Ks = _per_lane_k(K, B, T)
    weights = dict(lam_fetch=float(lam_fetch), lam_evict=float(lam_evict))
    if rule == "never" and eviction not in OWN_LOOP and eviction not in OTHER_LOOPS:
        pol = get_policy(eviction)
        res = simulate(tr, pol, Ks, options=options)
        held = torch.minimum(Ks, first_touches(tr).cpu()).to(res.faults.device) if pol.evicts else res.faults
        return PrefetchResult(res.faults, torch.zeros_like(res.faults), res.faults - held, res.requests, **weights)
    if eviction is not None and eviction not in OWN_LOOP and eviction not in OTHER_LOOPS:
        get_policy(eviction)  # an unknown name gets the registry's message
        raise ValueError(f"prefetching with {eviction!r} eviction is not implemented; choose from "
                         f"{', '.join([*OWN_LOOP, *OTHER_LOOPS])}")
    targets, off = _targets(rule, tr, hints, L, pos_in_call, P)
    if tr.numel() and int(tr.min()) < -1:
        raise ValueError(f"block ids must be >= 0 (-1 pads), got {int(tr.min())}")
    n_ids = max(int(tr.max()) if tr.numel() else 0, int(targets.max()) if off < T else 0) + 1
    limits.require(8 * (n_ids * 6 + T) * lane_chunks(B), f"prefetching over {n_ids} block ids")
    if backend not in ("auto", "cpu", "triton"):
        raise ValueError(f"unknown backend {backend!r}; choose from auto, cpu, triton")
    kernel = eviction in TRITON_EVICTIONS or rule == "lookahead"
    if backend == "auto":
        backend = "triton" if tr.is_cuda and kernel else "cpu"
    if backend == "triton":
        if not kernel:
            raise ValueError(f"the prefetch kernel serves {', '.join(TRITON_EVICTIONS)} eviction and the oracle, "
                             f"not {eviction!r}; use backend='cpu' or 'auto'")
        if not tr.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 for the interpreter)")
        from importlib import import_module

        module, func = TRITON.split(":")
        ws, shift = _working_sets(latent, B, T)
        out = getattr(import_module(module), func)(tr, full_targets(targets, off, T), Ks.to(tr.device),
                                                   "oracle" if eviction is None else eviction, options, int(L), ws,
                                                   shift)
    else:  # ids and targets in one dtype, int32 where they fit: each serving loop compiles once
        dt = torch.int32 if n_ids <= 2**31 else torch.int64
        out = torch.from_numpy(_serve_host(tr.cpu().to(dt).contiguous().numpy(),
                                           targets.cpu().to(dt).contiguous().numpy(), off,
                                           Ks, rule, eviction, L, n_ids, latent, options)).to(tr.device)
    requests = _lane_requests(tr).to(tr.device)
    return PrefetchResult(out[:, 0].clone(), out[:, 1].clone(), out[:, 2].clone(), requests, **weights)


def _targets(rule, tr, hints, L, pos_in_call, P):
    """(targets, off): the rule's blocks to prefetch, ``targets[:, t - off]`` before request t >= off."""
    B, T = tr.shape
    if rule == "lookahead" and (isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 0):
        raise ValueError(f"the oracle's window L must be an integer >= 0, got {L}")
    if P == 0 or rule == "never" or (rule == "lookahead" and L == 0):
        return torch.full((B, 1), -1, dtype=torch.int32), T  # nothing is ever read
    if rule == "follow_hint":
        if hints is None:
            raise ValueError("follow_hint needs hints (gpupage.core.prefetch.make_hints)")
        check_hint_options(L, 0.0)
        hints = _as_2d(hints).to(tr.device)
        if hints.shape != tr.shape or hints.dtype.is_floating_point:
            raise ValueError(f"hints must be integers [B, T] = {tuple(tr.shape)}, got {tuple(hints.shape)}")
        return hints, L
    if rule == "next_in_call":
        if pos_in_call is None:
            raise ValueError("next_in_call needs the trace's call structure (a Mooncake file's pos_in_call)")
        return call_targets(tr, pos_in_call), 0
    return tr, 0  # lookahead with a window: r_t, just in time


def _working_sets(latent, B: int, T: int):
    """(working sets [B, phases, W] or None, shift) of the oracle's latent state, checked against the traces."""
    if latent is None:
        return None, 1
    ws = latent.working_sets
    if ws.dim() != 3 or ws.shape[0] != B or ws.shape[1] * latent.shift < T:
        raise ValueError(f"latent state of {tuple(ws.shape)} (lanes, phases, W) at shift {latent.shift} does not "
                         f"cover {B} traces of {T} requests")
    return ws, latent.shift


def _serve_host(arr, targets, off, Ks, rule, eviction, L, n_ids, latent, options) -> np.ndarray:
    """The CPU path: int64 [B, 3] (faults, prefetches, evictions)."""
    ws, shift = _working_sets(latent, *arr.shape)
    if ws is not None:
        ws = ws.cpu().numpy()
        n_ids = max(n_ids, int(ws.max()) + 1)
    code = ORACLE if rule == "lookahead" else OWN_LOOP.get(eviction)
    if code is None:
        from importlib import import_module

        module, func = OTHER_LOOPS[eviction].split(":")
        return getattr(import_module(module), func)(arr, targets, off, Ks.numpy(), n_ids, options)
    return serve_cpu(arr, targets, off, Ks.numpy(), code, int(L), n_ids, ws, shift)


# ------------------------------------------------------------------------------------------------- OPT

def opt_cost(belady_faults, K, distinct, lam_fetch: float, lam_evict: float):
    """The offline optimum with P >= 1: lam_fetch * F_B + lam_evict * (F_B - min(K, distinct)).

    Each of Belady's loads becomes a just-in-time prefetch evicting Belady's victim, and no schedule loads
    fewer blocks than Belady's faults F_B (README, "Prefetching": the argument and its brute-force check).
    Works on ints and on int tensors ``[B]`` alike.
    """
    check_costs(lam_fetch, lam_evict, 1)
    held = torch.minimum(torch.as_tensor(K), torch.as_tensor(distinct))
    return lam_fetch * torch.as_tensor(belady_faults).double() + lam_evict * (torch.as_tensor(belady_faults) - held).double()


def opt(traces, K, lam_fetch: float, lam_evict: float) -> torch.Tensor:
    """float64 [B]: :func:`opt_cost` of each lane (Belady's faults and distinct blocks computed here)."""
    from .simulate import _per_lane_k, first_touches, simulate

    tr = torch.as_tensor(traces)
    tr = tr.unsqueeze(0) if tr.dim() == 1 else tr
    Ks = _per_lane_k(K, tr.shape[0], tr.shape[1])
    return opt_cost(simulate(tr, "belady", Ks).faults, Ks, first_touches(tr), lam_fetch, lam_evict)


def _as_2d(x) -> torch.Tensor:
    a = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    return (a.unsqueeze(0) if a.dim() == 1 else a).contiguous()
