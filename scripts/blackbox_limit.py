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
(most recent first, uniformly random) must tie LRU, while the white-box rule
that evicts blocks of U outside N first must not.  The argument is specific to
K_b >= W: at K_b < W most misses fall inside a phase and force choices among
blocks of N, which the history does inform (``adaptive`` beats LRU there).

    python scripts/blackbox_limit.py [--seeds 20000-21999] [--K 16,8] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse

import numpy as np
from numba import njit, prange

from gpupage.simulate import simulate
from gpupage.traces import ZipfParams, zipf_traces

U_MRU, U_RANDOM, U_OUTSIDE_N = 0, 1, 2
RULES = {"U, most recent first": U_MRU, "U, uniformly random": U_RANDOM, "U outside N first (white-box)": U_OUTSIDE_N}


@njit(parallel=True, cache=True)
def _told_phase_faults(traces, working_sets, shift, M, K, rule, coins):
    """Faults of a rule that knows the phase start; victims come from U when it is
    non-empty (ordered by ``rule``), else the least recently used block."""
    B, T = traces.shape
    faults = np.zeros(B, dtype=np.int64)
    for b in prange(B):
        slot_of = np.full(M, -1, dtype=np.int64)
        blk = np.empty(K, dtype=np.int64)
        last = np.empty(K, dtype=np.int64)
        in_n = np.zeros(M, dtype=np.bool_)
        n = 0
        for t in range(T):
            x = traces[b, t]
            s = (t // shift) * shift
            if t == s:
                in_n[:] = False
                for r in range(working_sets.shape[2]):
                    in_n[working_sets[b, t // shift, r]] = True
            j = slot_of[x]
            if j >= 0:
                last[j] = t
                continue
            faults[b] += 1
            if n < K:
                j = n
                n += 1
            else:
                nu = 0
                for i in range(K):
                    nu += last[i] < s
                j = -1
                if nu == 0:  # U empty: plain LRU
                    j = 0
                    for i in range(1, K):
                        if last[i] < last[j]:
                            j = i
                elif rule == U_RANDOM:
                    r = coins[b, t] % nu
                    for i in range(K):
                        if last[i] < s:
                            if r == 0:
                                j = i
                                break
                            r -= 1
                else:
                    best = np.int64(0)
                    for i in range(K):
                        if last[i] >= s:
                            continue
                        if rule == U_MRU:
                            key = -last[i]
                        else:
                            key = (np.int64(in_n[blk[i]]) << 40) + last[i]
                        if j < 0 or key < best:
                            j, best = i, key
                slot_of[blk[j]] = -1
            blk[j] = x
            last[j] = t
            slot_of[x] = j
    return faults


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
    params = ZipfParams()
    traces, latent = zipf_traces(params, seed=list(range(lo, hi + 1)), return_latent=True)
    arr, ws = traces.numpy(), latent.working_sets.numpy()
    coins = np.random.default_rng(lo).integers(0, 2**62, size=arr.shape, dtype=np.int64)
    model = None
    if args.checkpoint:
        from gpupage.controller import load_controller
        from gpupage.evaluate import controller_rollout

        model, _ = load_controller(args.checkpoint)
    print(f"seeds {lo}-{hi} ({arr.shape[0]} traces), M={params.M} W={params.W} shift={params.shift} T={params.T}")
    print("CR = faults / Belady's; paired difference to LRU in faults per trace, mean ± s.e.")
    for K in (int(k) for k in args.K.split(",")):
        opt = simulate(traces, "belady", K).faults.numpy().astype(np.float64)
        lru = simulate(traces, "lru", K).faults.numpy().astype(np.float64)
        rows = {"lru": lru, "adaptive": simulate(traces, "adaptive", K).faults.numpy().astype(np.float64)}
        for name, rule in RULES.items():
            rows[name] = _told_phase_faults(arr, ws, params.shift, params.M, K, rule, coins).astype(np.float64)
        if model is not None:
            rows["controller"] = controller_rollout(model, traces, K, latent)[0].numpy().astype(np.float64)
        print(f"\nK = {K}: Belady {opt.mean():.2f} faults/trace")
        for name, f in rows.items():
            m, se = paired(f, lru)
            print(f"  {name:32s} CR {np.mean(f / opt):.4f}   vs LRU {m:+8.3f} ± {se:.3f}")


if __name__ == "__main__":
    main()
