"""CPU throughput of s3fifo, sieve, wtinylfu and lirs against LRU and libCacheSim, in the same run.

Two workloads: B lanes of the App. B Zipf family at K (default 2048 x 5000 at K = 8) and
cloudPhysicsIO at each of ``--cloud-K`` (``--cloud-lanes`` copies of the trace as lanes).  Every
policy runs on the same lanes as LRU (our scoring path), so ``x LRU`` is a ratio measured in the
same run.  libCacheSim (when installed) runs the same policy on one cache: the cloud trace, or the
first ``--lcs-lanes`` Zipf lanes concatenated with each lane's ids shifted into a range of its own
(a throughput figure, not a fault count).  It refuses S3-FIFO below K = 10 and caches nothing with
W-TinyLFU below K = 100, so those are skipped.  Throughput is requests per CPU-second of this
process (best of ``--repeat``), so other load on a shared machine does not count; with
NUMBA_NUM_THREADS=1 it is a per-core comparison with libCacheSim (single-threaded).

    NUMBA_NUM_THREADS=1 python scripts/bench_modern.py [--B 2048] [--T 5000] [--K 8] [--cloud-K 64,1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gpupage.core.io import write_oracle  # noqa: E402
from gpupage.core.simulate import simulate  # noqa: E402
from gpupage.core.traces import ZipfParams, zipf_traces  # noqa: E402

POLICIES = ("s3fifo", "sieve", "wtinylfu", "lirs")
LCS = {"s3fifo": "S3FIFO", "sieve": "Sieve", "wtinylfu": "WTinyLFU", "lirs": "LIRS", "lru": "LRU"}
LCS_MIN_K = {"s3fifo": 10, "wtinylfu": 100}
CLOUD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "traces", "cloudPhysicsIO.txt")


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def lcs_rate(lcs, policy, path, K, n, repeat):
    if policy in LCS_MIN_K and K < LCS_MIN_K[policy]:
        return None

    def run():
        reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
        getattr(lcs, LCS[policy])(cache_size=K, hashpower=20).process_trace(reader)
    return n / best_of(run, repeat)


def bench(label, traces, K, lcs, lcs_path, lcs_n, repeat):
    requests = int((traces >= 0).sum())
    rates = {}
    for policy in ("lru",) + POLICIES:
        simulate(traces[:2], policy, K)  # compile outside the timing
        rates[policy] = requests / best_of(lambda: simulate(traces, policy, K), repeat)
    base = lcs_rate(lcs, "lru", lcs_path, K, lcs_n, repeat) if lcs else None
    threads = os.environ.get("NUMBA_NUM_THREADS", "all")
    print(f"\n{label}: B={traces.shape[0]} T={traces.shape[1]} K={K}, numba threads={threads}")
    print(f"{'policy':>9} {'req/cpu-s':>12} {'x LRU':>7} {'libCacheSim':>18} {'ours/lcs':>9}")
    for policy in ("lru",) + POLICIES:
        theirs = (base if policy == "lru" else lcs_rate(lcs, policy, lcs_path, K, lcs_n, repeat)) if lcs else None
        lcs_col = f"{theirs:18.3e} {rates[policy] / theirs:9.2f}" if theirs else f"{'n/a':>18} {'':>9}"
        print(f"{policy:>9} {rates[policy]:12.3e} {rates[policy] / rates['lru']:7.2f} {lcs_col}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--B", type=int, default=2048)
    ap.add_argument("--T", type=int, default=5000)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--cloud-K", default="64,1024")
    ap.add_argument("--cloud-lanes", type=int, default=8)
    ap.add_argument("--lcs-lanes", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    try:
        import libcachesim as lcs
    except ImportError:
        lcs = None
    with tempfile.TemporaryDirectory() as tmp:
        z = zipf_traces(ZipfParams(T=args.T), seed=list(range(args.B)))
        n = min(args.lcs_lanes, args.B)
        shifted = (z[:n].long() + torch.arange(n).unsqueeze(1) * (int(z.max()) + 1)).flatten().numpy()
        zpath = os.path.join(tmp, "zipf.oracleGeneral")
        write_oracle(zpath, shifted + 1)
        bench("App. B Zipf", z, args.K, lcs, zpath, shifted.size, args.repeat)
        if os.path.exists(CLOUD):
            ids = np.loadtxt(CLOUD, dtype=np.int64)
            cpath = os.path.join(tmp, "cloud.oracleGeneral")
            write_oracle(cpath, ids)
            lanes = torch.from_numpy(ids).expand(args.cloud_lanes, -1).contiguous()
            for K in (int(k) for k in args.cloud_K.split(",")):
                bench("cloudPhysicsIO", lanes, K, lcs, cpath, ids.size, args.repeat)


if __name__ == "__main__":
    main()
