"""What an online policy can know about Mooncake's future (issue 12's real-trace target), measured.

The learned policy misses "5% below the best baseline" on the Mooncake validation calls.  This script
measures how much signal the trace offers a policy that sees the past and the per-request metadata
(position in call, call length), so that the gap is explained rather than guessed:

* **Conversations**: a call continues a conversation when its block at position 1 was seen before (every
  call's blocks seen before form a prefix of it).  How often calls return, after how many calls, and how
  the chance of returning depends on the turn and on the first call's length.
* **Probes**: priority policies on the validation calls (6400..7999, replayed from an empty cache), each a
  plain loop: ``lfu`` (checked against the registry's), LFU evicting a call's last (partial) block first, LFU
  evicting the most recently used first among equal counts (a block seen once is usually a new conversation tail),
  LFU keyed by the conversation's turns and activity instead of the block's, and LFU protecting blocks whose
  conversation has been re-entered since they were last used (they are about to be requested).
* ``--hit-density``: LHD's ranking (hit density per class and age, ``gpupage.controller.hit_density``) as a
  table estimated on the training calls (0..6399) only, then frozen: how far a rule gets that reads a block's
  count and age alone (and, in a second probe, also whether its last access was its call's last block).
* ``--density-sizes``: hit-density tables estimated at another cache size than the one they serve, the size
  chosen on an inner split of the training calls (``density_sizes``).
* ``--lrfu``: LRFU (a decayed access count: Lee et al., 2001), its half-life chosen on calls 0..6399 among
  K * 2**j, j = 0..6, then frozen.
* ``--classes``: those tables with classes split by the call's turn, the calls since its conversation's previous
  turn and the last-block flag, fitted on calls 0..4799 and judged on 4800..6399 (``class_probe``).
* ``--hindsight``: tables fitted on the very calls they are judged on, a bound for frozen count-and-age tables
  (``hindsight_probe``).
* ``--regression``: a float MLP regressing log2 of each resident block's next-use distance, trained on
  LFU rollouts of training calls (0..6399 only), evicting the largest prediction, with and without the
  metadata features (about 15 minutes on one core).

    python scripts/mooncake_signal.py [--K 1024,4096] [--hit-density] [--density-sizes] [--lrfu] [--regression]
        [--classes] [--hindsight]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from numba import njit

from gpupage.core.io import read_trace
from gpupage.core.traces import call_slice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOONCAKE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation_train.jsonl")
NEVER = 1 << 40


def conversations(trace) -> dict:
    """Per call: its turn in its conversation (1 = first), the calls until the conversation's next call
    (``gap``, 0 if none) and since its previous one (``since``, 0 for a first call: known when the call
    arrives), keyed by the block at position 1 (calls of one block belong to none)."""
    ids, pos, call = trace.ids, trace.meta["pos_in_call"], trace.meta["call"]
    n_calls = int(call.max()) + 1
    root = np.full(n_calls, -1, dtype=np.int64)
    at1 = pos == 1
    root[call[at1]] = ids[at1]
    length = np.bincount(call, minlength=n_calls)
    turn, gap, since = (np.zeros(n_calls, dtype=np.int64) for _ in range(3))
    seen, last_call = {}, {}
    for c in range(n_calls):
        r = int(root[c])
        if r < 0:
            continue
        seen[r] = seen.get(r, 0) + 1
        turn[c] = seen[r]
        if r in last_call:
            gap[last_call[r]] = since[c] = c - last_call[r]
        last_call[r] = c
    return {"turn": turn, "gap": gap, "since": since, "length": length}


def serve(trace, K: int, choose) -> int:
    """Non-compulsory faults of demand paging at size K; on a fault on a full cache ``choose(blk, t, s)``
    returns the victim's slot.

    ``s`` holds, per block, its access ``count``, ``last`` access (-1 before its first), last reuse ``gap`` (0
    until reused), insertion time ``ins`` and ``root`` (the block at position 1 of its last call: its
    conversation), and the trace's per-request ``pos`` and ``len`` (a block's are those of its last access)."""
    ids = trace.ids.astype(np.int64)
    pos = trace.meta["pos_in_call"]
    n = int(ids.max()) + 1
    s = {"count": np.zeros(n, np.int64), "last": np.full(n, -1, np.int64), "gap": np.zeros(n, np.int64),
         "ins": np.zeros(n, np.int64), "root": np.arange(n), "pos": pos, "len": trace.meta["call_len"]}
    slot_of, blk = np.full(n, -1, np.int64), np.zeros(K, np.int64)
    filled = faults = 0
    cur_root = 0
    for t, x in enumerate(ids):
        if pos[t] == 1:
            cur_root = x
        if s["count"][x]:
            s["gap"][x] = t - s["last"][x]
        if slot_of[x] < 0:
            faults += 1
            if filled < K:
                slot = filled
                filled += 1
            else:
                slot = choose(blk, t, s)
                slot_of[blk[slot]] = -1
            blk[slot], slot_of[x], s["ins"][x] = x, slot, t
        s["count"][x] += 1
        s["last"][x] = t
        if pos[t] >= 1:
            s["root"][x] = cur_root
    return faults - trace.distinct


def probe(trace, K: int, key) -> int:
    """:func:`serve` evicting the resident block of smallest ``key(b, s)`` (``b`` the resident blocks, one
    sortable value per block); ties go to the lowest slot."""
    if len(trace.ids) >= 1 << 25:
        raise ValueError("probe packs times into 25 bits")
    return serve(trace, K, lambda blk, t, s: int(np.argmin(key(blk, s))))


def _key(flag, count, last):
    """Evict the smallest (flag, count, last), packed in one int64 (count capped; last < 2**25)."""
    return (flag.astype(np.int64) << 50) | (np.minimum(count, (1 << 24) - 1) << 25) | last


def _is_last(b, s):
    """Whether each block's last access was its call's last (partial) block."""
    lb = s["last"][b]
    return (s["pos"][lb] == s["len"][lb] - 1).astype(np.int64)


PROBES = {
    "lfu": lambda b, s: _key(np.zeros_like(b), s["count"][b], s["last"][b]),
    "lfu, a call's last block first": lambda b, s: _key(1 - _is_last(b, s), s["count"][b], s["last"][b]),
    "lfu, the most recent first among equals": lambda b, s: _key(np.zeros_like(b), s["count"][b],
                                                                  (1 << 25) - 1 - s["last"][b]),
    "lfu of the conversation": lambda b, s: _key(np.zeros_like(b), s["count"][s["root"][b]], s["last"][s["root"][b]]),
    "lfu, re-entered conversations kept": lambda b, s: _key(
        (s["last"][s["root"][b]] > s["last"][b]) & (s["root"][b] != b), s["count"][b], s["last"][b]),
}


def density_probe(full, val, K: int, last_flag: bool, rounds: int = 4) -> int:
    """Validation non-compulsory faults of a hit-density table (``gpupage.controller.hit_density``) estimated
    on calls 0..6399 only, its classes the count's, split by the last-block flag if ``last_flag``."""
    from gpupage.controller.hit_density import count_classes, estimate, rollout

    def classes(tr):
        c = count_classes(tr.ids)
        return 2 * c + (tr.meta["pos_in_call"] == tr.meta["call_len"] - 1) if last_flag else c

    train = call_slice(full, 0, 6400)
    return rollout(val.ids, K, estimate(train.ids, K, rounds, classes(train)), classes(val))[0]


def class_schemes(trace) -> dict:
    """int64 [T] hit-density classes per request, from what is known when the request arrives: the count class
    alone, and split by the call's turn (1, 2, 3, 4+), by the calls since its conversation's previous turn
    (none, 1-19, 20-99, 100-399, 400+) and by whether the block is its call's last."""
    from gpupage.controller.hit_density import count_classes

    c, conv, call = count_classes(trace.ids), conversations(trace), trace.meta["call"]
    turn = np.minimum(conv["turn"][call], 4)
    since = np.searchsorted([1, 20, 100, 400], conv["since"][call], side="right")
    last = (trace.meta["pos_in_call"] == trace.meta["call_len"] - 1).astype(np.int64)
    return {"count": c, "count x turn": 5 * c + turn, "count x since": 5 * c + since,
            "count x turn x last": 2 * (5 * c + turn) + last, "count x since x last": 2 * (5 * c + since) + last}


def class_probe(full, Ks: list[int]) -> None:
    """Bagged hit-density tables (``hit_density.bagged``, 5 sizes) over each of :func:`class_schemes`' classes,
    estimated on calls 0..4799 and judged on 4800..6399 from an empty cache: does what a conversation has shown
    so far sharpen the count-and-age rule?  (The validation calls are not read.)"""
    from gpupage.controller.hit_density import bagged, rollout

    fit, inner = call_slice(full, 0, 4800), call_slice(full, 4800, 6400)
    on_fit, on_inner = class_schemes(fit), class_schemes(inner)
    print(f"  inner split (calls 4800..6399), lfu: {[rollout(inner.ids, K, None, on_inner['count'])[0] for K in Ks]}")
    for name in on_fit:
        print(f"  bagged table, classes {name:26s}", *(rollout(inner.ids, K, bagged(fit.ids, K, 5, on_fit[name]),
                                                               on_inner[name])[0] for K in Ks), flush=True)


def hindsight_probe(full, Ks: list[int]) -> None:
    """Hit-density tables fitted on the very calls they are judged on (a look-ahead no policy has): the most a
    frozen count-and-age table could do there, against LFU.  Chooses nothing."""
    from gpupage.controller.hit_density import bagged, estimate, rollout

    for a, b in ((4800, 6400), (6400, 8000)):
        tr = call_slice(full, a, b)
        c = class_schemes(tr)["count"]
        for K in Ks:
            print(f"  calls {a}..{b - 1}, K = {K}: lfu {rollout(tr.ids, K, None, c)[0]}, table fitted there "
                  f"{rollout(tr.ids, K, estimate(tr.ids, K, 4, c), c)[0]}, bagged tables fitted there "
                  f"{rollout(tr.ids, K, bagged(tr.ids, K, 5, c), c)[0]}", flush=True)


@njit(cache=True)
def lrfu(ids, K: int, half_life: float) -> int:
    """Non-compulsory faults of LRFU: evict the resident block whose access count, each access decayed by
    2**(-age / half_life), is smallest; ties to the least recent (half_life 0: undecayed, that is LFU)."""
    n = ids.max() + 1
    dc, last, slot_of = np.zeros(n), np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    blk, key = np.zeros(K, np.int64), np.zeros((K, 2))
    filled = faults = distinct = 0
    for t in range(ids.shape[0]):
        x = ids[t]
        if last[x] < 0:
            distinct += 1
            dc[x] = 1.0
        elif half_life > 0:
            dc[x] = dc[x] * 2.0 ** (-(t - last[x]) / half_life) + 1.0
        else:
            dc[x] += 1.0
        last[x] = t
        s = slot_of[x]
        if s < 0:
            faults += 1
            if filled < K:
                s = filled
                filled += 1
            else:
                s = 0
                for j in range(1, K):  # decayed counts compare at any common time as log2(dc) + last / h
                    if key[j, 0] < key[s, 0] or (key[j, 0] == key[s, 0] and key[j, 1] < key[s, 1]):
                        s = j
                slot_of[blk[s]] = -1
            blk[s] = x
            slot_of[x] = s
        key[s, 0] = np.log2(dc[x]) + t / half_life if half_life > 0 else dc[x]
        key[s, 1] = t
    return faults - distinct


def lrfu_probe(full, val, K: int) -> tuple[float, int]:
    """(half-life, validation non-compulsory faults) of LRFU, the half-life K * 2**j (j = 0..6) with the fewest
    faults on calls 0..6399."""
    train = call_slice(full, 0, 6400).ids.astype(np.int64)
    h = min((float(K << j) for j in range(7)), key=lambda h: lrfu(train, K, h))
    return h, lrfu(val.ids.astype(np.int64), K, h)


def density_sizes(full, val, Ks: list[int]) -> None:
    """Print hit-density tables estimated at other cache sizes than the one they serve: each K's table rolled out
    at every K of ``Ks`` on the validation calls; then per K the mean of the tables estimated at K * 2**j
    (j = 0..4), which chooses nothing, and the one size chosen on an inner split (estimated on calls 0..4799,
    judged on 4800..6399 from an empty cache), each re-estimated on calls 0..6399 and measured once on the
    validation calls."""
    from gpupage.controller.hit_density import count_classes, estimate, mean_table, rollout

    train, fit, inner = call_slice(full, 0, 6400), call_slice(full, 0, 4800), call_slice(full, 4800, 6400)
    serve = lambda tr, K, table: rollout(tr.ids, K, table, count_classes(tr.ids))[0]  # noqa: E731
    fitted = lambda tr, K: estimate(tr.ids, K, 4, count_classes(tr.ids))  # noqa: E731
    for k_est in Ks:
        table = fitted(train, k_est)
        print(f"  table estimated at K = {k_est}, rolled out at K = {Ks}:", *(serve(val, K, table) for K in Ks))
    for K in Ks:
        on_fit, on_train = ([fitted(tr, K << j) for j in range(5)] for tr in (fit, train))  # each table once
        scores = [serve(inner, K, t) for t in on_fit]
        j = int(np.argmin(scores))  # ties: the smaller size
        print(f"  K = {K}: inner split {scores} (lfu {serve(inner, K, None)}); the mean of the five "
              f"(hit_density.bagged) {serve(inner, K, mean_table(on_fit))}, validation "
              f"{serve(val, K, mean_table(on_train))}; chose K * 2**{j}: validation {serve(val, K, on_train[j])}",
              flush=True)


def _features(b, t, s, meta: bool) -> np.ndarray:
    lg = lambda v: np.log2(v + 1.0)  # noqa: E731
    cols = [lg(t - s["last"][b]), lg(s["count"][b]), lg(s["gap"][b]), (s["gap"][b] > 0) * 1.0, lg(t - s["ins"][b])]
    if meta:
        lb = s["last"][b]
        p, n = s["pos"][lb], s["len"][lb]
        cols += [lg(p), lg(n), lg(n - p - 1), (n - p == 1) * 1.0]
    return np.stack(cols, 1).astype(np.float32)


def _rollout(trace, K: int, meta: bool, score=None, every: int = 8, record=None) -> int:
    """:func:`serve` evicting as LFU (``score`` None) or the largest ``score``; ``record`` collects every
    ``every``-th decision's (features, log2 next-use distance capped at 2**17)."""
    ids = trace.ids
    nxt, seen = np.full(len(ids), NEVER, np.int64), {}
    for t in range(len(ids) - 1, -1, -1):
        nxt[t], seen[ids[t]] = seen.get(ids[t], NEVER), t
    decisions = 0

    def choose(blk, t, s):
        nonlocal decisions
        F = _features(blk, t, s, meta)
        if record is not None and decisions % every == 0:
            record.append((F, np.log2(np.minimum(nxt[s["last"][blk]] - t, 1 << 17)).astype(np.float32)))
        decisions += 1
        return int(np.argmin(PROBES["lfu"](blk, s))) if score is None else int(np.argmax(score(F)))

    return serve(trace, K, choose)


def regression_probe(full, val, K: int, meta: bool, epochs: int = 6) -> int:
    """Validation non-compulsory faults of the float next-use regressor (trained on calls 0..6399)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)  # the figures in the README were measured single-threaded
    record = []
    for lo in (0, 1600, 3200, 4800):  # every 8th decision at K = 1024: about 18M rows
        _rollout(call_slice(full, lo, lo + 1600), K, meta, every=max(8 * K // 1024, 1), record=record)
    X = torch.from_numpy(np.concatenate([r[0] for r in record]))
    Y = torch.from_numpy(np.concatenate([r[1] for r in record]))
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        for j in torch.randperm(len(X)).split(512):
            loss = ((net(X[j]).squeeze(1) - Y[j]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    def score(F):
        with torch.no_grad():
            return net(torch.from_numpy(F)).squeeze(1).numpy()

    return _rollout(val, K, meta, score)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", default=MOONCAKE)
    ap.add_argument("--K", default="1024,4096")
    ap.add_argument("--hit-density", action="store_true", help="also the hit-density tables (~3 min)")
    ap.add_argument("--density-sizes", action="store_true",
                    help="also hit-density tables estimated at other cache sizes (~6 min)")
    ap.add_argument("--lrfu", action="store_true", help="also LRFU, its half-life chosen on calls 0..6399 (~10 s)")
    ap.add_argument("--regression", action="store_true", help="also the float next-use regressor (~15 min)")
    ap.add_argument("--classes", action="store_true",
                    help="also hit-density tables with classes split by the conversation, on an inner split (~13 min)")
    ap.add_argument("--hindsight", action="store_true",
                    help="also hit-density tables fitted on the calls they are judged on (~8 min)")
    args = ap.parse_args(argv)
    full = read_trace(args.trace, "mooncake")
    conv = conversations(full)
    turn, gap = conv["turn"], conv["gap"]
    back = gap > 0
    print(f"{len(turn)} calls; {back[turn > 0].mean():.3f} of conversation calls return; calls until the return: "
          f"median {np.median(gap[back]):.0f}, quartiles {np.percentile(gap[back], 25):.0f}-{np.percentile(gap[back], 75):.0f}")
    for k in range(1, 6):
        m = turn == k
        print(f"  turn {k}: {m.sum()} calls, P(return) {back[m].mean():.3f}")
    first = turn == 1
    for lo, hi in ((1, 8), (8, 32), (32, 64), (64, 1 << 20)):
        m = first & (conv["length"] >= lo) & (conv["length"] < hi)
        print(f"  first call of {lo}-{hi - 1} blocks: {m.sum()} calls, P(return) {back[m].mean():.3f}")
    val = call_slice(full, 6400, 8000)
    Ks = [int(k) for k in args.K.split(",")]
    print(f"validation calls 6400-7999: non-compulsory faults at K = {Ks}")
    for name, key in PROBES.items():
        print(f"  {name:40s}", *(probe(val, K, key) for K in Ks))
    if args.hit_density:
        for last_flag in (False, True):
            print(f"  {'hit density by count' + (' and last block' if last_flag else ''):40s}",
                  *(density_probe(full, val, K, last_flag) for K in Ks), flush=True)
    if args.density_sizes:
        density_sizes(full, val, Ks)
    if args.lrfu:
        for K in Ks:
            h, f = lrfu_probe(full, val, K)
            print(f"  lrfu at K = {K}, half-life {h:.0f} (chosen on calls 0..6399): {f}", flush=True)
    if args.classes:
        class_probe(full, Ks)
    if args.hindsight:
        hindsight_probe(full, Ks)
    if args.regression:
        for meta in (False, True):
            print(f"  {'next-use regressor' + (' + metadata' if meta else ''):40s}",
                  *(regression_probe(full, val, K, meta) for K in Ks), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
