"""The plain-Python reference of the ``learned`` policy (the ``naive_x`` of the kernel trio): written
from the specification in :mod:`gpupage.zoo.learned`'s docstring with dicts and Python integers, and
sharing no code with the numba or Triton paths, so the tests compare three independent readings."""

from __future__ import annotations

import math

from .heuristics import NaiveAdaptive
from .learned import HALF_LIVES, LearnedNet


def naive_learned(trace: list[int], K: int, net: LearnedNet, candidates: int | None = None):
    """(faults, hits, victims) of ``learned`` on one trace, written from the specification above
    with dicts and Python integers (no code shared with the numba or Triton paths)."""
    fracs = [[math.floor(2**16 * 2 ** (-r / h)) for r in range(h)] for h in HALF_LIVES]

    def D(i, dt):
        h = HALF_LIVES[i]
        return fracs[i][dt % h] >> min(dt // h, 17)

    def L(v):
        u = v + 1
        e = u.bit_length() - 1
        return 8 * e + ((u - (1 << e)) * 8) // (1 << e)

    def value(i, c, since, t):
        return c * D(i, t - since) >> 16

    def rate(i, c, since, t):
        h = HALF_LIVES[i]
        return min(value(i, c, since, t) * round(2**16 * (1 - 2 ** (-1 / h))) >> 24, 255)

    def layer(W, b, s, x):
        return [min(max((bj + sum(w * xi for w, xi in zip(row, x))) >> s, 0), 255) for row, bj in zip(W, b)]

    W1, b1, W2, b2, w3 = (a.tolist() for a in (net.W1, net.b1, net.W2, net.b2, net.w3))
    blocks: dict[int, dict] = {}  # per block: count, last_use, gap, dc
    slots: list[dict] = []  # per slot: block, ins, hits
    fault_c, fault_t, novel_c, novel_t = [0, 0, 0], 0, [0, 0, 0], 0
    ada, t_change = NaiveAdaptive(), 0  # adaptive's change detector, at its default constants
    faults, hits, victims = 0, [False] * len(trace), [-1] * len(trace)
    for t, x in enumerate(trace):
        if x < 0:
            continue
        st = blocks.setdefault(x, {"count": 0, "last_use": 0, "gap": 0, "dc": [0, 0, 0]})
        resume = ada.resume
        ada.access(x, t)
        if ada.resume != resume:  # a declared change
            t_change = t
        where = [i for i, sl in enumerate(slots) if sl["block"] == x]
        if where:
            s = where[0]
            hits[t] = True
            slots[s]["hits"] += 1
        else:
            faults += 1
            fault_c = [value(i, fault_c[i], fault_t, t) + 2**16 for i in range(3)]
            fault_t = t
            if st["count"] == 0:
                novel_c = [value(i, novel_c[i], novel_t, t) + 2**16 for i in range(3)]
                novel_t = t
            if len(slots) < K:
                slots.append({})
                s = len(slots) - 1
            else:
                ctx = ([rate(i, fault_c[i], fault_t, t) for i in range(3)]
                       + [rate(i, novel_c[i], novel_t, t) for i in range(3)] + [L(K), min(16 * ada.S, 255),
                                                                                L(t - t_change)])
                by_age = sorted(range(K), key=lambda i: blocks[slots[i]["block"]]["last_use"])
                pool = by_age[:candidates] if candidates else by_age
                keys = {}
                for i in pool:
                    sl, b = slots[i], blocks[slots[i]["block"]]
                    x_in = [L(t - b["last_use"]), L(t - sl["ins"]), L(sl["hits"]), L(b["count"]), L(b["gap"])]
                    x_in += [L(value(h, b["dc"][h], b["last_use"], t) >> 10) for h in range(3)]
                    x_in += [min(ada.in_window(sl["block"], t), 255), min(ada.cand.get(sl["block"], 0), 255),
                             255 if ada.protected(sl["block"]) else 0]
                    h2 = layer(W2, b2, net.s2, layer(W1, b1, net.s1, x_in + ctx))
                    keys[i] = (sum(w * h for w, h in zip(w3, h2)), b["last_use"])
                s = min(keys, key=keys.get)
                victims[t] = slots[s]["block"]
            slots[s] = {"block": x, "ins": t, "hits": 0}
        if st["count"] > 0:
            st["gap"] = t - st["last_use"]
        st["dc"] = [value(h, st["dc"][h], st["last_use"], t) + 2**16 for h in range(3)]
        st["count"] += 1
        st["last_use"] = t
    return faults, hits, victims
