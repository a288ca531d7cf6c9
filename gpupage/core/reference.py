"""Plain per-trace Python reference of the simulator: slow, obvious, independent.

Tests (and the kernel tests) compare every backend against ``naive_simulate``.
It follows the contract written in :mod:`gpupage.core.policies` line by line and
shares no code with the numba or Triton paths except the RNG.
"""

from __future__ import annotations

from . import rng
from .policies import get_policy

NEVER = 1 << 40


def next_uses(trace: list[int]) -> list[int]:
    """next_uses[t] = smallest t' > t with trace[t'] == trace[t], else NEVER (pads: NEVER)."""
    out = [NEVER] * len(trace)
    seen: dict[int, int] = {}
    for t in range(len(trace) - 1, -1, -1):
        x = trace[t]
        if x < 0:
            continue
        out[t] = seen.get(x, NEVER)
        seen[x] = t
    return out


def naive_simulate(trace: list[int], policy: str, K: int, key: int = 0):
    """Simulate one trace.  Returns (faults, hits, victims) as Python lists.

    ``key`` is the lane's RNG key (``rng.lane_keys``), read by Random only.
    """
    pol = get_policy(policy)
    nxt = next_uses(trace)
    slots: list[int] = []  # block id per slot; lowest empty slot = len(slots)
    last: list[int] = []
    inserted: list[int] = []
    next_use: list[int] = []
    count: dict[int, int] = {}
    rkey = rng.stream_key(key, rng.STREAM_RANDOM_POLICY)
    faults = 0
    hits = [False] * len(trace)
    victims = [-1] * len(trace)

    def priority(s: int) -> int:
        if policy == "lru":
            return last[s]
        if policy == "fifo":
            return inserted[s]
        if policy == "lfu":
            return count[slots[s]]
        if policy == "belady":
            return -next_use[s]
        raise AssertionError(policy)

    for t, x in enumerate(trace):
        if x < 0:
            continue
        count[x] = count.get(x, 0) + 1
        if x in slots:
            s = slots.index(x)
            hits[t] = True
            last[s] = t
            next_use[s] = nxt[t]
            continue
        faults += 1
        if len(slots) < K:
            slots.append(x)
            last.append(t)
            inserted.append(t)
            next_use.append(nxt[t])
            continue
        if not pol.evicts:
            continue
        if pol.randomized:
            s = rng.uniform_below(rng.draw(rkey, t), K)
        else:
            s = min(range(K), key=lambda i: (priority(i), last[i]))
        victims[t] = slots[s]
        slots[s] = x
        last[s] = t
        inserted[s] = t
        next_use[s] = nxt[t]
    return faults, hits, victims
