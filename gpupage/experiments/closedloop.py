"""Closed-loop (policy-dependent) traces: the next request depends on what is resident.

Assumption 1 of the paper (exogenous requests) fails for an agent whose next
need depends on its context.  This family models that: at step t, with
probability sigma the request is a block *associated* with a uniformly chosen
resident block (a fixed random association graph, ``degree`` neighbours per
block), otherwise it is request t of the exogenous non-stationary Zipf stream.
The trace is therefore generated inside the simulation loop, once per policy,
and the induced trace ``r^pi`` is returned so that Belady (or any policy) can be
run on it afterwards as a fixed sequence.

Randomness, per lane key (``rng.lane_keys``):

* association graph: ``assoc[b, j]`` from ``STREAM_ASSOC`` at position b*degree+j,
  a uniform block other than b;
* step t: coin ``draw(STREAM_CLOSED_LOOP, 3t) < threshold(sigma)`` (only when a
  block is resident), resident slot ``uniform_below(draw(.., 3t+1), n_resident)``,
  neighbour ``uniform_below(draw(.., 3t+2), degree)``;
* the exogenous stream is ``zipf_traces`` of the same seed, and Random's victims
  come from ``STREAM_RANDOM_POLICY`` at position t, exactly as in ``simulate``,
  so ``simulate(r^pi, pi, K, seed=seed)`` reproduces the closed-loop faults.

Slots follow the simulator contract (lowest empty slot on a cold fill, the
victim's slot on a fault), so "the s-th resident block" is the same on every
backend.  Supported policies: the online per-slot scoring ones (LRU, FIFO, LFU,
Random, Fixed).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from numba import njit, prange

from ..core import rng
from ..core.cpu import _key, argmin_key, hit_rows, evict, lane_chunks, place, release
from ..core.policies import FIFO, FIXED, LFU, LRU, RANDOM, Policy, get_policy
from ..core.traces import ZipfParams, _batch_size, zipf_traces
from ..core import limits

CLOSED_LOOP_CODES = (LRU, FIFO, LFU, RANDOM, FIXED)


@dataclass(frozen=True)
class ClosedLoopParams:
    """A closed-loop trace family over a non-stationary Zipf exogenous stream."""

    zipf: ZipfParams = field(default_factory=ZipfParams)
    """The exogenous stream (and M, T)."""
    sigma: float = 0.3
    """Probability that a request follows an association of a resident block."""
    degree: int = 4
    """Associations per block in the fixed random graph."""

    def __post_init__(self):
        if not 0.0 <= self.sigma <= 1.0:
            raise ValueError(f"sigma must be in [0, 1], got {self.sigma}")
        if self.degree < 1:
            raise ValueError(f"degree must be >= 1, got {self.degree}")
        if self.zipf.M < 2:
            raise ValueError(f"closed-loop traces need M >= 2 blocks, got {self.zipf.M}")

    def threshold(self) -> int:
        return rng.probability_threshold(self.sigma)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClosedLoopResult:
    faults: torch.Tensor
    """int64 [B]: faults of the policy on its own induced trace."""
    traces: torch.Tensor
    """int32 [B, T]: the induced trace r^pi."""
    hits: torch.Tensor | None = None
    """bool [B, T] when asked for."""


@njit(parallel=True, cache=True)
def _assoc_kernel(keys, M, D, out):
    for b in prange(keys.shape[0]):
        akey = rng.stream_key(keys[b], rng.STREAM_ASSOC)
        for x in range(M):
            for j in range(D):
                v = rng.uniform_below(rng.draw(akey, x * D + j), M - 1)
                out[b, x * D + j] = v + 1 if v >= x else v


def association_graph(params: ClosedLoopParams, seed=0, batch: int | None = None) -> torch.Tensor:
    """int32 ``[B, M * degree]``: ``assoc[b, x * degree + j]`` is block x's j-th neighbour in lane b."""
    B = _batch_size(seed, batch)
    limits.require(4 * B * params.zipf.M * params.degree, f"association graphs of {B} lanes x {params.zipf.M} blocks")
    out = np.empty((B, params.zipf.M * params.degree), dtype=np.int32)
    with limits.work_threads(B):
        _assoc_kernel(rng.lane_keys(seed, B), params.zipf.M, params.degree, out)
    return torch.from_numpy(out)


@njit(cache=True)
def _run_lane(exo, assoc, D, threshold, k, code, ckey, rkey, trace_row, want_hits, hits_row,
              slot_of, count, blk, keys):
    T = exo.shape[0]
    n = 0
    faults = 0
    c = 0
    for t in range(T):
        x = exo[t]
        if n > 0 and rng.draw(ckey, 3 * t) < threshold:
            s = rng.uniform_below(rng.draw(ckey, 3 * t + 1), n)
            x = assoc[blk[s] * D + rng.uniform_below(rng.draw(ckey, 3 * t + 2), D)]
        trace_row[t] = x
        if code == LFU:
            c = count[x] + 1
            count[x] = c
        s = slot_of[x]
        if s >= 0:
            if want_hits:
                hits_row[t] = 1
            if code == LRU or code == LFU:
                keys[s] = _key(code, t, 0, c, 0)
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        elif code == FIXED:
            continue
        else:
            if code == RANDOM:
                s = rng.uniform_below(rng.draw(rkey, t), k)
            else:
                s = argmin_key(keys, k)
            evict(slot_of, blk, s)
        place(slot_of, blk, s, x)
        keys[s] = _key(code, t, t, c, 0)
    release(slot_of, blk, n)
    for i in range(count.shape[0]):
        count[i] = 0
    return faults


@njit(parallel=True, cache=True)
def _closed_loop_batch(exo, assoc, D, threshold, K, code, keys, traces, want_hits, hits, faults, M, nchunks):
    B = exo.shape[0]
    for ch in prange(nchunks):
        slot_of = np.full(M, -1, dtype=np.int32)
        count = np.zeros(M if code == LFU else 1, dtype=np.int32)
        blk = np.empty(K, dtype=np.int64)
        kk = np.empty(K, dtype=np.int64)
        for b in range(ch * B // nchunks, (ch + 1) * B // nchunks):
            ckey = rng.stream_key(keys[b], rng.STREAM_CLOSED_LOOP)
            rkey = rng.stream_key(keys[b], rng.STREAM_RANDOM_POLICY)
            faults[b] = _run_lane(exo[b], assoc[b], D, threshold, K, code, ckey, rkey, traces[b],
                                  want_hits, hits[b if want_hits else 0], slot_of, count, blk, kk)


def closed_loop_policy(policy: str | Policy) -> Policy:
    """The registry entry, if it can drive a closed loop (online, per-slot scores)."""
    pol = policy if isinstance(policy, Policy) else get_policy(policy)
    if pol.code not in CLOSED_LOOP_CODES or pol.needs_future or pol.cpu != "gpupage.core.cpu:simulate_cpu":
        raise ValueError(f"policy {pol.name!r} cannot drive a closed loop; use one of lru, fifo, lfu, random, fixed")
    return pol


def closed_loop(params: ClosedLoopParams, policy: str | Policy, K: int, seed=0, batch: int | None = None,
                backend: str = "cpu", return_hits: bool = False, device=None) -> ClosedLoopResult:
    """Simulate ``policy`` on closed-loop traces; the trace is generated inside the loop.

    Args:
        params: the family (exogenous Zipf stream, sigma, degree).
        policy: lru, fifo, lfu, random or fixed.
        K: cache size in blocks (>= 1).
        seed, batch: as in ``zipf_traces`` (int seed + batch, or B seeds).  The same seed
            gives every policy the same exogenous stream, association graph and coins.
        backend: ``cpu`` (numba) or ``triton`` (``kernels.closedloop``; CUDA or the interpreter).
    Returns:
        :class:`ClosedLoopResult` with faults [B], induced traces int32 [B, T], hits [B, T] or None.
    """
    pol = closed_loop_policy(policy)
    if int(K) < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    K = min(int(K), params.zipf.T)  # a cache of T blocks never evicts either: no [K] scratch beyond it
    B = _batch_size(seed, batch)
    exo = zipf_traces(params.zipf, seed, B)
    assoc = association_graph(params, seed, B)
    keys = rng.lane_keys(seed, B)
    if backend == "triton":
        from kernels.closedloop import closed_loop_triton

        dev = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        if torch.device(dev).type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("backend 'triton' needs CUDA (or TRITON_INTERPRET=1 for the interpreter)")
        faults, traces, hits = closed_loop_triton(exo.to(dev), assoc.to(dev), params.degree, params.threshold(),
                                                  int(K), pol.code, torch.from_numpy(keys).to(dev), return_hits)
        return ClosedLoopResult(faults, traces, hits)
    if backend != "cpu":
        raise ValueError(f"unknown backend {backend!r}; choose cpu or triton")
    T = params.zipf.T
    limits.require(B * T * (5 if return_hits else 4), f"closed-loop traces of {B} lanes x {T} requests")
    traces = np.empty((B, T), dtype=np.int32)
    hits = hit_rows(B, T, return_hits)
    faults = np.empty(B, dtype=np.int64)
    with limits.work_threads(B):
        _closed_loop_batch(exo.numpy(), assoc.numpy(), params.degree, params.threshold(), K, pol.code, keys,
                           traces, return_hits, hits, faults, params.zipf.M, lane_chunks(B))
    return ClosedLoopResult(torch.from_numpy(faults), torch.from_numpy(traces),
                            torch.from_numpy(hits.view(np.bool_)) if return_hits else None)


def naive_closed_loop(exo: list[int], assoc: list[int], degree: int, sigma: float, policy: str, K: int, key: int):
    """Plain Python reference for one lane: (faults, induced trace, hits).

    ``exo`` the exogenous trace, ``assoc`` the flat association list of the lane,
    ``key`` its lane key.  Follows the contract of :mod:`gpupage.core.policies` with lists.
    """
    ckey = rng.stream_key(key, rng.STREAM_CLOSED_LOOP)
    rkey = rng.stream_key(key, rng.STREAM_RANDOM_POLICY)
    threshold = rng.probability_threshold(sigma)
    slots: list[int] = []
    last: list[int] = []
    inserted: list[int] = []
    count: dict[int, int] = {}
    trace: list[int] = []
    hits: list[bool] = []
    faults = 0
    for t, x in enumerate(exo):
        if slots and rng.draw(ckey, 3 * t) < threshold:
            resident = slots[rng.uniform_below(rng.draw(ckey, 3 * t + 1), len(slots))]
            x = assoc[resident * degree + rng.uniform_below(rng.draw(ckey, 3 * t + 2), degree)]
        trace.append(x)
        count[x] = count.get(x, 0) + 1
        if x in slots:
            s = slots.index(x)
            hits.append(True)
            last[s] = t
            continue
        hits.append(False)
        faults += 1
        if len(slots) < K:
            slots.append(x)
            last.append(t)
            inserted.append(t)
            continue
        if policy == "fixed":
            continue
        if policy == "random":
            s = rng.uniform_below(rng.draw(rkey, t), K)
        else:
            prio = {"lru": last, "fifo": inserted, "lfu": [count[b] for b in slots]}[policy]
            s = min(range(K), key=lambda i: (prio[i], last[i]))
        slots[s] = x
        last[s] = t
        inserted[s] = t
    return faults, trace, hits


def hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """int64 [B]: positions where two [B, T] traces differ."""
    return (torch.as_tensor(a) != torch.as_tensor(b)).sum(dim=1).to(torch.int64)
