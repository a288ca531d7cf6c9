"""Miss-ratio curves on the Mooncake trace: gpupage against libCacheSim, in one process.

The 64-size curves (``--K auto``) of lru, fifo, lfu, arc, clock and belady, computed by
``gpupage.experiments.mrc.miss_ratio_curves`` (one pass for LRU, LFU and Belady, lanes of one
``simulate`` call for the rest) and by libCacheSim's Python binding, one cache per point as a
user would script it (``hashpower=16``; its default table is far slower to set up).  Rounds
alternate between the two so load on the machine hits both alike; the ratios are per round,
reported as medians.  Also: all cores and one numba thread (libCacheSim runs on one), the one-pass
curves against 64 lanes of ``simulate``, and ``gpupage mrc`` as a command, start-up included.
Fault counts must equal libCacheSim's for lru, fifo and belady at every point (asserted).

    python scripts/bench_mrc.py [--rounds 3] [--trace PATH]
    python scripts/bench_mrc.py --shards    # SHARDS' error against the exact curves (README table)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpupage.core.io import write_oracle  # noqa: E402
from gpupage.experiments.mrc import auto_sizes, miss_ratio_curves  # noqa: E402

MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation_train.jsonl"
POLICIES = ["lru", "fifo", "lfu", "arc", "clock", "belady"]
LCS_NAMES = {"lru": "LRU", "fifo": "FIFO", "lfu": "LFU", "arc": "ARC", "clock": "Clock", "belady": "Belady"}
EXACT = ("lru", "fifo", "belady")  # libCacheSim's LFU keeps counts only while resident; its ARC keeps p in a double


def mooncake_ids(path: Path) -> np.ndarray:
    """Every call's hash_ids, flattened in call order."""
    from gpupage.core.io import read_trace

    return read_trace(path, "mooncake").ids


def ours(ids: np.ndarray, one_pass: bool = True, policies=POLICIES) -> tuple[float, dict]:
    t0 = time.perf_counter()
    rows = miss_ratio_curves(ids, policies, "auto", one_pass=one_pass)
    return time.perf_counter() - t0, {(r["policy"], r["K"]): r["faults"] for r in rows}


def libcachesim(path: str, Ks: list[int], T: int) -> tuple[float, dict, dict]:
    import libcachesim as lcs

    faults, per_policy = {}, {}
    t0 = time.perf_counter()
    for p in POLICIES:
        t1 = time.perf_counter()
        for K in Ks:
            reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
            miss_ratio, _ = getattr(lcs, LCS_NAMES[p])(cache_size=K, hashpower=16).process_trace(reader)
            faults[p, K] = round(miss_ratio * T)
        per_policy[p] = time.perf_counter() - t1
    return time.perf_counter() - t0, faults, per_policy


def command(txt: str, out: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gpupage", "mrc", txt, "--policies", ",".join(POLICIES), "--out", out,
                    "--quiet"], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    return time.perf_counter() - t0


def shards_errors(seeds=range(5)):
    """Mean absolute miss-ratio error of SHARDS samples against the exact 64-size curves, per policy,
    trace and rate, averaged over hash seeds: over every size, and over the sizes whose scaled
    cache K * rate holds at least 5 blocks."""
    from gpupage.core.io import read_trace

    cloud = read_trace(str(MOONCAKE.parent / "cloudPhysicsIO.txt"))
    moon = mooncake_ids(MOONCAKE)
    traces = {"cloudPhysicsIO": (cloud.ids, cloud.original[cloud.ids]),
              "Mooncake": (np.unique(moon, return_inverse=True)[1], moon)}
    print(f"mean |error| over the 64 sizes / over the sizes with K * rate >= 5, mean of seeds {list(seeds)}")
    print("| trace | rate | " + " | ".join(POLICIES) + " |")
    print("|---|---|" + "---|" * len(POLICIES))
    for name, (ids, original) in traces.items():
        exact = {(r["policy"], r["K"]): r["miss_ratio"] for r in miss_ratio_curves(ids, POLICIES, "auto")}
        for rate in (0.1, 0.01):
            cells = []
            for p in POLICIES:
                err = np.array([[abs(r["miss_ratio"] - exact[p, r["K"]]) for r in
                                 miss_ratio_curves(ids, [p], "auto", sample_rate=rate, seed=seed, original=original)]
                                for seed in seeds]).mean(axis=0)
                big = np.array(sorted(K for q, K in exact if q == p)) * rate >= 5
                cells.append(f"{err.mean():.3f} / {err[big].mean():.3f}")
            print(f"| {name} | {rate} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trace", default=str(MOONCAKE))
    ap.add_argument("--shards", action="store_true", help="Only measure SHARDS' error (both shared traces).")
    args = ap.parse_args()
    if args.shards:
        return shards_errors()
    raw = mooncake_ids(Path(args.trace))
    ids = np.unique(raw, return_inverse=True)[1]
    T, Ks = ids.size, auto_sizes(int(ids.max()) + 1)
    cores = numba.get_num_threads()
    print(f"# {args.trace}: {T} requests, {ids.max() + 1} blocks; {len(Ks)} sizes x {len(POLICIES)} policies; "
          f"{cores} numba threads")
    ours(ids[:5000])  # numba caches: loaded (or compiled) before any timing
    ours(ids[:5000], one_pass=False, policies=["lru", "lfu", "belady"])
    with tempfile.TemporaryDirectory() as tmp:
        oracle, txt = os.path.join(tmp, "mooncake.oracleGeneral"), os.path.join(tmp, "mooncake.txt")
        write_oracle(oracle, raw)
        Path(txt).write_text("\n".join(map(str, raw.tolist())) + "\n")
        command(txt, os.path.join(tmp, "warm"))
        rec = {k: [] for k in ("ours", "ours_1", "lcs", "cmd")}
        split = {(p, m): [] for p in ("lru", "lfu", "belady") for m in (True, False)}
        lcs_pol = {p: [] for p in POLICIES}
        for r in range(args.rounds):
            t, mine = ours(ids)
            rec["ours"].append(t)
            numba.set_num_threads(1)
            rec["ours_1"].append(ours(ids)[0])
            numba.set_num_threads(cores)
            t, theirs, per = libcachesim(oracle, Ks, T)
            rec["lcs"].append(t)
            for p in POLICIES:
                lcs_pol[p].append(per[p])
            for p in EXACT:
                bad = [K for K in Ks if mine[p, K] != theirs[p, K]]
                assert not bad, f"{p}: faults differ from libCacheSim at K = {bad[:5]}"
            for (p, one_pass), times in split.items():
                times.append(ours(ids, one_pass=one_pass, policies=[p])[0])
            rec["cmd"].append(command(txt, os.path.join(tmp, f"out{r}")))
            print(f"round {r}: ours {rec['ours'][-1]:.2f} s ({cores} threads), {rec['ours_1'][-1]:.2f} s (1 thread); "
                  f"libCacheSim {rec['lcs'][-1]:.2f} s; gpupage mrc command {rec['cmd'][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in rec.items()}
    ratio = statistics.median(lc / o for lc, o in zip(rec["lcs"], rec["ours"]))
    ratio_1 = statistics.median(lc / o for lc, o in zip(rec["lcs"], rec["ours_1"]))
    points = len(Ks) * len(POLICIES)
    print(f"\n{points} points, libCacheSim equal for {', '.join(EXACT)} at every K")
    print("| what | time (median) | requests/s | vs libCacheSim (median of per-round ratios) |")
    print("|---|---|---|---|")
    for key, label, rt in (("ours", f"gpupage, {cores} numba threads", ratio), ("ours_1", "gpupage, 1 numba thread", ratio_1),
                           ("lcs", "libCacheSim (1 thread)", 1.0)):
        print(f"| {label} | {med[key]:.2f} s | {points * T / med[key]:.3g} | {rt:.1f}x |")
    print(f"| `gpupage mrc` command, start-up included | {med['cmd']:.2f} s | | |")
    print("\none pass against 64 lanes of simulate (median s): " + ", ".join(
        f"{p} {statistics.median(split[p, True]):.3f} / {statistics.median(split[p, False]):.3f}"
        for p in ("lru", "lfu", "belady")))
    print("libCacheSim per policy (median s): " + ", ".join(f"{p} {statistics.median(v):.2f}" for p, v in lcs_pol.items()))


if __name__ == "__main__":
    main()
