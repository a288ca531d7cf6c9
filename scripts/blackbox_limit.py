"""How much can any history-only (black-box) policy beat LRU at K_b = W?

On the App. B family a new working set N is drawn uniformly, independently of
the past, at every phase start s.  At K_b = W every miss in a phase finds at
least one resident block that has not been requested since s (the cache would
otherwise hold W + 1 blocks of N); call those U.  Given the request history,
the blocks of U are exchangeable: their pre-s history is independent of N, and
since s they share the same history (no request).  So every rule that evicts
from U has the same expected faults, and LRU is one (a block requested since s
is always more recent than one that was not).  Evicting a block requested since
s instead costs a fault almost surely (it is in N), against P(x in N | x in U)
<= W / M for a block of U.  LRU is therefore the black-box optimum at K_b = W,
up to rare events (a block of the old phase never requested there).

This script puts the argument to the test on many seeds, paired per trace:
U-evicting rules that *are told* the phase start and order U differently
(most recent first, uniformly random; :mod:`gpupage.controller.observability`) must tie
LRU, while the white-box rule that evicts blocks of U outside N first must not.
The argument is specific to K_b >= W: at K_b < W most misses fall inside a
phase and force choices among blocks of N, which the history does inform
(``adaptive`` beats LRU there).

    python scripts/blackbox_limit.py [--seeds 20000-21999] [--K 16,8] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse

import numpy as np

from gpupage.controller.observability import told_phase_faults
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces

RULES = {"U, most recent first": "u_mru", "U, uniformly random": "u_random",
         "U outside N first (white-box)": "u_outside_n"}


def paired(f, ref):
    d = f - ref
    return d.mean(), d.std(ddof=1) / np.sqrt(d.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="20000-21999", help="inclusive seed range")
    ap.add_argument("--K", default="16,8", help="cache sizes, comma-separated")
    ap.add_argument("--checkpoint", default=None, help="also evaluate this controller greedily")
    args = ap.parse_args()
    lo, hi = (int(v) for v in args.seeds.split("-"))
    seeds = list(range(lo, hi + 1))
    params = ZipfParams()
    traces, latent = zipf_traces(params, seed=seeds, return_latent=True)
    model = None
    if args.checkpoint:
        from gpupage.controller.network import load_controller
        from gpupage.controller.evaluate import controller_rollout

        model, _ = load_controller(args.checkpoint)
    print(f"seeds {lo}-{hi} ({len(seeds)} traces), M={params.M} W={params.W} shift={params.shift} T={params.T}")
    print("CR = faults / Belady's; paired difference to LRU in faults per trace, mean ± s.e.")
    for K in (int(k) for k in args.K.split(",")):
        opt = simulate(traces, "belady", K).faults.numpy().astype(np.float64)
        lru = simulate(traces, "lru", K).faults.numpy().astype(np.float64)
        rows = {"lru": lru, "adaptive": simulate(traces, "adaptive", K).faults.numpy().astype(np.float64)}
        for name, rule in RULES.items():
            rows[name] = told_phase_faults(traces, latent, K, rule, seed=seeds).astype(np.float64)
        if model is not None:
            rows["controller"] = controller_rollout(model, traces, K, latent)[0].numpy().astype(np.float64)
        print(f"\nK = {K}: Belady {opt.mean():.2f} faults/trace")
        for name, f in rows.items():
            m, se = paired(f, lru)
            print(f"  {name:32s} CR {np.mean(f / opt):.4f}   vs LRU {m:+8.3f} ± {se:.3f}")


if __name__ == "__main__":
    main()
