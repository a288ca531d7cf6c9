"""The policy registry: one entry per eviction policy, read by the API and the CLI.

Contract (shared by every backend, written once here):

* Demand paging with forced insertion: every miss is a fault and inserts the
  requested block, evicting one when K blocks are resident.  A cold fill takes
  the lowest empty slot; a faulting block takes its victim's slot.
* A scoring policy evicts the resident block with the smallest ``priority``;
  ties go to the least recently accessed block (smallest last access time).
* Per-slot integer state the priorities read: ``last`` (time of last access),
  ``inserted`` (time of insertion), ``count`` (accesses of the block over the
  whole trace so far, surviving eviction) and ``next_use`` (next time the block
  is requested after its last access; "never" is larger than any time).

Prefetching (issue 13; :mod:`gpupage.core.prefetch`, every backend holds to this):

* Hints: request t carries h_t, the block requested at t + L, correct with probability 1 - eps and
  otherwise a uniform block of the lane's universe (the Zipf family's M, a file's distinct blocks);
  h_t = -1 where t + L is past the end or a pad.  Closed-loop traces have none.
* Before request t is revealed a policy knows r_<t and h_<t and may issue up to P prefetches.  A prefetch
  brings a block in at once, into the lowest empty slot or, on a full cache, into the slot of the
  eviction policy's victim as at a fault at t (state after request t - 1, nothing excluded); prefetching a
  resident block is a no-op and costs nothing.  Then r_t is served as above.
* A prefetch is not an access: LRU's last access, LFU's count and ``adaptive``'s clocks and counters stay
  as they were (a block prefetched and never requested has no last access and goes first on ties of
  priority); FIFO counts it inserted just before a fault at t would be.  Ties of (priority, last
  access) go to the lowest slot.
* Costs per lane: faults (1 each), prefetches (lam_fetch in (0, 1] each), evictions (lam_evict >= 0
  each: every block removed to make room, by a fault or a prefetch; cold fills evict nothing).

A scoring policy is one entry below plus its priority in each backend
(``gpupage/core/cpu.py``, ``gpupage/core/reference.py``, ``kernels/simulate.py``), keyed
by the entry's ``code``.  A policy whose state does not fit per-slot scores
(ARC, a change-detecting heuristic, ...) is one entry naming its own ``cpu`` and
``triton`` implementations, each a ``"module:function"`` with the signature of
:func:`gpupage.core.cpu.simulate_cpu` / :func:`kernels.simulate.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    name: str
    code: int
    """Integer id every backend switches on."""
    rule: str
    """One line: what it evicts."""
    needs_future: bool = False
    """Reads next-use indices, so it runs on a materialised trace."""
    evicts: bool = True
    """False for Fixed: a full cache never changes."""
    randomized: bool = False
    """Reads the counter-based RNG (stream ``STREAM_RANDOM_POLICY``)."""
    needs_checkpoint: bool = False
    """Runs only with ``options={"checkpoint": ...}``, so default policy lists leave it out."""
    cpu: str = "gpupage.core.cpu:simulate_cpu"
    """CPU implementation, ``module:function``."""
    triton: str | None = "kernels.simulate:simulate"
    """Triton implementation, ``module:function``; None where the state does not fit a kernel yet
    (``backend="auto"`` then runs the CPU path on a copy and returns results on the traces' device)."""
    options: tuple[str, ...] = ()
    """The ``options`` keys its implementation reads (``simulate`` refuses any other); a shared options
    dict (a sweep's) reaches it filtered to these (:meth:`own_options`)."""

    def own_options(self, options: dict | None) -> dict | None:
        """The part of a shared options dict this policy reads (None when nothing)."""
        mine = {k: v for k, v in (options or {}).items() if k in self.options}
        return mine or None

    def implementation(self, backend: str):
        """The function simulating this policy on ``backend`` ('cpu' or 'triton')."""
        from importlib import import_module

        module, func = (self.cpu if backend == "cpu" else self.triton).split(":")
        return getattr(import_module(module), func)


BELADY, LRU, LFU, FIFO, RANDOM, FIXED = range(6)
PREDICTION_OPTIONS = ("eta", "replace")
# the tuning constants of gpupage/zoo/heuristics.py (its PARAMS; a test holds them equal)
ADAPTIVE_OPTIONS = ("novel_gap", "novel_gain", "calm_decay", "alarm", "refractory", "stale", "suspect")

POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("belady", BELADY, "evict the block whose next use is farthest (never used again first)", needs_future=True),
        Policy("lru", LRU, "evict the least recently accessed block"),
        Policy("lfu", LFU, "evict the block with the fewest accesses so far (counts survive eviction)"),
        Policy("fifo", FIFO, "evict the block inserted earliest"),
        Policy("random", RANDOM, "evict a uniformly random resident block", randomized=True),
        Policy("fixed", FIXED, "static class: the first K distinct blocks stay forever", evicts=False),
        Policy("blind_oracle", 20, "evict the block whose predicted next arrival is farthest (options eta, replace)", needs_future=True, cpu="gpupage.zoo.baselines:simulate_cpu", triton="kernels.baselines:simulate", options=PREDICTION_OPTIONS),
        Policy("predictive_marker", 21, "marking; among unmarked blocks follow predictions, random once a chain exceeds H_K", needs_future=True, randomized=True, cpu="gpupage.zoo.baselines:simulate_cpu", triton="kernels.baselines:simulate", options=PREDICTION_OPTIONS),
        Policy("arc", 22, "ARC: adaptive split between recency (T1) and frequency (T2) lists with ghost lists", cpu="gpupage.zoo.baselines:simulate_cpu", triton="kernels.baselines:simulate"),
        Policy("clock", 23, "second chance: the hand evicts the first block whose reference bit is clear", cpu="gpupage.zoo.baselines:simulate_cpu", triton="kernels.baselines:simulate"),
        Policy("s3fifo", 30, "S3-FIFO: a small FIFO (K/10) filters one-hit blocks for a main FIFO with 2-bit reinsertion; ghost hits enter main", cpu="gpupage.zoo.modern:simulate_cpu", triton=None),
        Policy("sieve", 31, "SIEVE: a hand sweeping from old to new evicts the first block not hit since the hand last passed it", cpu="gpupage.zoo.modern:simulate_cpu", triton="kernels.modern:simulate"),
        Policy("wtinylfu", 32, "W-TinyLFU: a 1% LRU window's victim replaces the SLRU main's victim only if a count-min sketch rates it more frequent", cpu="gpupage.zoo.modern:simulate_cpu", triton=None),
        Policy("lirs", 33, "LIRS: evict the oldest resident HIR block (1% of K); a block reused within the LIR blocks' recency becomes LIR", cpu="gpupage.zoo.modern:simulate_cpu", triton=None),
        Policy("adaptive", 10, "change-detecting LFU: fewest accesses since a detected working-set change", cpu="gpupage.zoo.heuristics:simulate_cpu", triton="kernels.heuristics:simulate", options=ADAPTIVE_OPTIONS),
        Policy("learned", 40, "lowest score of a per-slot integer network (options checkpoint, candidates)", needs_checkpoint=True, cpu="gpupage.zoo.learned:simulate_cpu", triton="kernels.learned:simulate", options=("checkpoint", "candidates")),
    )
}

# Prefetching rules (issue 13), each combined with an eviction policy above; the model is in the docstring.
PREFETCH_RULES: dict[str, str] = {
    "never": "no prefetch: demand paging with the eviction policy (today's policies)",
    "follow_hint": "just in time: before request t, fetch the block hinted for t (hint h_{t-L}) when not resident",
    "next_in_call": "before request t, fetch r_t when it continues the call of request t-1 (file traces with calls)",
    "lookahead": "online oracle: knows r_t..r_{t+L-1} and the working set's ranks; fetches r_t just in time, "
                 "evicts blocks outside the window (outside the working set, then least popular rank, then LRU) "
                 "before those inside it (farthest next use first)",
}

# online and self-contained: no future, no checkpoint (what 'every policy' lists default to)
ONLINE = tuple(name for name, p in POLICIES.items() if not (p.needs_future or p.needs_checkpoint))


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}") from None


def check_options(policies, options: dict | None) -> None:
    """A shared options dict must give each key to at least one of ``policies``: one that none reads is an error."""
    unread = [k for k in (options or {}) if not any(k in p.options for p in policies)]
    if unread:
        readers = {k: [p.name for p in POLICIES.values() if k in p.options] for k in unread}
        raise ValueError("; ".join(f"option {k!r} is read by none of {', '.join(p.name for p in policies)}"
                                   + (f" (it is read by {', '.join(r)})" if r else "") for k, r in readers.items()))


def parse_policies(text: str) -> list[Policy]:
    """'lru,belady' -> [Policy, Policy]; raises ValueError naming an unknown one."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("no policy given")
    return [get_policy(n) for n in names]
