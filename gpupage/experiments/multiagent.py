"""Multi-agent context partitioning (Def. 18): n agents share K_shared blocks.

Each agent has its own non-stationary Zipf trace over its own block ids
(agent i's block b is global id ``i * M + b``); the agents issue requests in
round-robin order (global step ``t * n + i`` is agent i's t-th request).
Three ways to share the K_shared slots, all LRU inside:

* ``static``: an equal partition; agent i owns ``K // n`` slots (+1 for the first
  ``K % n`` agents) and never touches another's.  Equivalent to n separate LRU caches.
* ``shared``: one LRU over all agents' blocks (the agents compete freely).
* ``dynamic``: a demand-proportional split.  Every ``epoch`` global requests the
  quotas are re-apportioned in proportion to each agent's demand, the number of
  distinct blocks among its last ``window`` requests (Denning's working set),
  each agent keeping at least one slot (largest remainders, integers only).  A
  faulting agent fills a free slot if there is one; else, at or above its quota
  it evicts its own LRU block, below it the LRU block of the agent furthest
  above its quota.  Quotas shrink lazily, by evictions, never by flushing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..core.traces import ZipfParams, zipf_traces
from ..core import limits

STRATEGIES = ("static", "shared", "dynamic")
STATIC, SHARED, DYNAMIC = range(3)


@dataclass(frozen=True)
class MultiAgentParams:
    """n agents over K_shared slots."""

    n: int = 4
    """Agents (>= 1)."""
    K_shared: int = 32
    """Slots shared by all agents (>= n)."""
    zipf: ZipfParams = field(default_factory=ZipfParams)
    """Per-agent trace family; T is the number of requests per agent."""
    Ws: tuple = (4, 8, 16, 32)
    """Working-set sizes, agent i gets Ws[i % len(Ws)] (heterogeneous demand)."""
    window: int = 200
    """Requests of an agent over which the dynamic split measures its demand."""
    epoch: int = 100
    """Global requests between re-splits."""

    def __post_init__(self):
        limits.check_int("n (agents)", self.n, 1)
        limits.check_int("K_shared", self.K_shared, self.n)  # a slot per agent
        if not self.Ws or any(not 1 <= w <= self.zipf.M for w in self.Ws):
            raise ValueError(f"every working-set size must be in [1, M={self.zipf.M}], got {self.Ws}")
        limits.check_int("window", self.window, 1)
        limits.check_int("epoch", self.epoch, 1)
        # the agents' traces and their interleaving (int64), per-block maps, the demand windows
        limits.require(8 * self.n * (2 * self.zipf.T + 2 * self.zipf.M + self.window),
                       f"{self.n} agents x {self.zipf.T} requests over {self.zipf.M} blocks each")

    def agent_W(self, i: int) -> int:
        return self.Ws[i % len(self.Ws)]


def agent_traces(params: MultiAgentParams, seed: int = 0) -> np.ndarray:
    """int64 ``[n, T]``: agent i's trace (lane i of ``seed``) with ids offset by i * M."""
    M, T = params.zipf.M, params.zipf.T
    out = np.empty((params.n, T), dtype=np.int64)
    for i in range(params.n):
        zp = ZipfParams(M=M, alpha=params.zipf.alpha, W=params.agent_W(i), shift=params.zipf.shift, T=T)
        out[i] = zipf_traces(zp, [seed * 1_000_003 + i]).numpy()[0] + i * M
    return out


def interleave(traces: np.ndarray) -> np.ndarray:
    """Round-robin: global request t * n + i is agent i's request t."""
    return np.ascontiguousarray(traces.T).reshape(-1)


def equal_quotas(K: int, n: int) -> np.ndarray:
    return np.array([K // n + (i < K % n) for i in range(n)], dtype=np.int64)


@njit(cache=True)
def _apportion(K, demand, quota):
    """quota[i] = 1 + share of K - n proportional to demand (largest remainders, ties to the lowest i)."""
    n = demand.shape[0]
    spare = K - n
    total = 0
    for i in range(n):
        total += demand[i]
    if total == 0:
        for i in range(n):
            quota[i] = K // n + (1 if i < K % n else 0)
        return
    rem = np.empty(n, dtype=np.int64)
    given = 0
    for i in range(n):
        quota[i] = 1 + spare * demand[i] // total
        rem[i] = spare * demand[i] % total
        given += quota[i] - 1
    for _ in range(spare - given):
        j = 0
        for i in range(1, n):
            if rem[i] > rem[j]:
                j = i
        quota[j] += 1
        rem[j] = -1


@njit(cache=True, nogil=True)
def _run(trace, n, K, M, mode, window, epoch, faults):
    """One interleaved trace; faults[i] accumulates agent i's faults."""
    T = trace.shape[0]
    slot_of = np.full(n * M, -1, dtype=np.int64)
    blk = np.full(K, -1, dtype=np.int64)
    owner = np.full(K, -1, dtype=np.int64)
    last = np.zeros(K, dtype=np.int64)
    occ = np.zeros(n, dtype=np.int64)
    quota = np.empty(n, dtype=np.int64)
    for i in range(n):
        quota[i] = K // n + (1 if i < K % n else 0)
    # demand: distinct blocks in each agent's last `window` requests
    ring = np.full((n, window), -1, dtype=np.int64)
    seen = np.zeros(n * M, dtype=np.int64)
    demand = np.zeros(n, dtype=np.int64)
    used = 0
    for t in range(T):
        a = t % n
        x = trace[t]
        if mode == DYNAMIC:
            if t > 0 and t % epoch == 0:
                _apportion(K, demand, quota)
            pos = (t // n) % window
            old = ring[a, pos]
            if old >= 0:
                seen[old] -= 1
                if seen[old] == 0:
                    demand[a] -= 1
            ring[a, pos] = x
            seen[x] += 1
            if seen[x] == 1:
                demand[a] += 1
        s = slot_of[x]
        if s >= 0:
            last[s] = t
            continue
        faults[a] += 1
        if mode == STATIC and occ[a] < quota[a]:
            s = used
            used += 1
        elif mode != STATIC and used < K:
            s = used
            used += 1
        else:
            victim_agent = -1  # -1: any agent (shared LRU)
            if mode == STATIC or (mode == DYNAMIC and occ[a] >= quota[a]):
                victim_agent = a
            elif mode == DYNAMIC:
                over = -(1 << 62)
                for j in range(n):
                    if occ[j] - quota[j] > over:
                        over = occ[j] - quota[j]
                        victim_agent = j
            s = -1
            for i in range(used):
                if (victim_agent < 0 or owner[i] == victim_agent) and (s < 0 or last[i] < last[s]):
                    s = i
            slot_of[blk[s]] = -1
            occ[owner[s]] -= 1
        blk[s] = x
        owner[s] = a
        last[s] = t
        slot_of[x] = s
        occ[a] += 1


def simulate_agents(traces: np.ndarray, K: int, strategy: str, M: int, window: int = 200, epoch: int = 100) -> np.ndarray:
    """Per-agent faults (int64 [n]) of one round-robin run.

    Args:
        traces: int ``[n, T]`` per-agent traces, agent i's ids in [i*M, (i+1)*M).
        K: shared slots (>= n).  strategy: static, shared or dynamic.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    traces = np.asarray(traces, dtype=np.int64)
    n = traces.shape[0]
    if n < 1:
        raise ValueError("need at least one agent")
    if K < n:
        raise ValueError(f"K_shared must be >= n = {n}, got {K}")
    faults = np.zeros(n, dtype=np.int64)
    # slots beyond the requests are never used: none is evicted either way (and K * demand stays in int64)
    args = (interleave(traces), n, min(K, traces.size), M, STRATEGIES.index(strategy), window, epoch, faults)
    # on a worker thread (the call holds no GIL): a numba call cannot be stopped, and one run of many agents may
    # take minutes, so the main thread waits where Ctrl-C and SIGTERM can still end the process
    failed = []

    def work():
        try:
            _run(*args)
        except BaseException as e:  # raised again below, in the caller's thread
            failed.append(e)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if failed:
        raise failed[0]
    return faults


def naive_agents(traces: list[list[int]], K: int, strategy: str, window: int = 200, epoch: int = 100) -> list[int]:
    """Plain Python reference of :func:`simulate_agents` (dicts and lists, no slots)."""
    n = len(traces)
    T = len(traces[0])
    resident: dict[int, tuple[int, int]] = {}  # block -> (owner, last access)
    quota = [K // n + (i < K % n) for i in range(n)]
    recent: list[list[int]] = [[] for _ in range(n)]
    faults = [0] * n
    g = 0
    for t in range(T):
        for a in range(n):
            x = traces[a][t]
            if strategy == "dynamic":
                if g > 0 and g % epoch == 0:
                    quota = _naive_apportion(K, [len(set(r)) for r in recent])
                recent[a] = (recent[a] + [x])[-window:]
            if x in resident:
                resident[x] = (a, g)
                g += 1
                continue
            faults[a] += 1
            occ = [sum(1 for o, _ in resident.values() if o == i) for i in range(n)]
            if strategy == "static":
                full = occ[a] >= quota[a]
                pool = [b for b, (o, _) in resident.items() if o == a]
            else:
                full = len(resident) >= K
                pool = list(resident)
                if strategy == "dynamic":
                    j = a if occ[a] >= quota[a] else max(range(n), key=lambda i: (occ[i] - quota[i], -i))
                    pool = [b for b, (o, _) in resident.items() if o == j]
            if full:
                del resident[min(pool, key=lambda b: resident[b][1])]
            resident[x] = (a, g)
            g += 1
    return faults


def _naive_apportion(K: int, demand: list[int]) -> list[int]:
    n = len(demand)
    total = sum(demand)
    if total == 0:
        return [K // n + (i < K % n) for i in range(n)]
    spare = K - n
    quota = [1 + spare * d // total for d in demand]
    rem = [spare * d % total for d in demand]
    for _ in range(K - sum(quota)):
        j = max(range(n), key=lambda i: (rem[i], -i))
        quota[j] += 1
        rem[j] = -1
    return quota


def multiagent_table(ns=(2, 4, 8), K_per_agent: int = 8, seeds=(0, 1, 2, 3, 4), zipf: ZipfParams | None = None,
                     Ws=(4, 8, 16, 32), window: int = 200, epoch: int = 100, progress=None) -> list[dict]:
    """Total and per-agent faults of every strategy for each n (K_shared = K_per_agent * n), mean over seeds."""
    zipf = zipf or ZipfParams()
    rows = []
    for n in ns:
        params = MultiAgentParams(n=n, K_shared=K_per_agent * n, zipf=zipf, Ws=tuple(Ws), window=window, epoch=epoch)
        per = {s: [] for s in STRATEGIES}
        for seed in seeds:
            tr = agent_traces(params, seed)
            for s in STRATEGIES:
                per[s].append(simulate_agents(tr, params.K_shared, s, zipf.M, window, epoch))
        for s in STRATEGIES:
            f = np.mean(per[s], axis=0)
            rows.append(dict(n=n, K_shared=params.K_shared, strategy=s, total=float(f.sum()),
                             fault_rate=float(f.sum() / (n * zipf.T)), per_agent=[float(v) for v in f],
                             W=[params.agent_W(i) for i in range(n)]))
        if progress is not None:
            progress()
    return rows
