"""Peak memory of reading (and simulating) a large trace file, as a multiple of its int32 size.

Writes a T-request trace of sparse 40-bit ids (skewed over ``--distinct`` of them) as text and as
zstd-compressed oracleGeneral (next_access_vtime filled in, so its check runs too; once with the
content size in the frame header as the zstd tool writes it, once without), then in a fresh
subprocess per case measures the peak RSS (VmHWM) increase over the process after imports and a warm-up
read (numba's compiled code loaded): ``read_trace`` alone, and ``simulate_file`` (read + one
policy at one K).  Target: the increase stays under 3x the int32 ids (4 T bytes).

    python scripts/bench_io.py [--T 50000000] [--distinct 3000000] [--policies fifo,belady,lru] [--K 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from gpupage.core.io import ORACLE_DTYPE, next_access  # noqa: E402

CHUNK = 1 << 20

# run in a fresh interpreter, peak from VmHWM: Linux keeps ru_maxrss across exec, so a child's
# would start at this (large) process's RSS when it was forked
PROBE = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from gpupage.core.io import read_trace
from gpupage.experiments.calls import simulate_file
path, warm, policy, K = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
run = (lambda p: read_trace(p)) if policy == "-" else (lambda p: simulate_file(p, [policy], [K], device="cpu"))
run(warm)
with open("/proc/self/statm") as f:
    before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
t0 = time.perf_counter()
out = run(path)
secs = time.perf_counter() - t0
with open("/proc/self/status") as f:
    peak = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
print(json.dumps({"increase": peak - before, "seconds": secs,
                  "requests": out.requests if policy == "-" else out[0]["requests"]}))
"""


def make_ids(T: int, distinct: int, seed: int = 0) -> np.ndarray:
    """Skewed requests over ``distinct`` sparse ids: index floor(D u^3), popular ids first."""
    gen = np.random.default_rng(seed)
    pool = gen.choice(2**40, size=distinct, replace=False)
    return pool[(distinct * gen.random(T) ** 3).astype(np.int64)]


def write_txt(path: str, ids: np.ndarray):
    with open(path, "w") as f:
        for i in range(0, ids.size, CHUNK):
            f.write("\n".join(map(str, ids[i:i + CHUNK].tolist())) + "\n")


def write_oracle_zst(path: str, ids: np.ndarray, content_size: bool):
    import zstandard

    nxt = next_access(ids)
    size = ids.size * ORACLE_DTYPE.itemsize if content_size else -1
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f, size=size) as w:
        for i in range(0, ids.size, CHUNK):
            rec = np.zeros(min(CHUNK, ids.size - i), dtype=ORACLE_DTYPE)
            rec["time"] = np.arange(i, i + rec.size) // 1000
            rec["id"] = ids[i:i + rec.size]
            rec["size"] = 4096
            rec["next"] = nxt[i:i + rec.size]
            w.write(rec.tobytes())


def probe(path: str, warm: str, policy: str, K: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, ROOT, path, warm, policy, str(K)],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"probe failed on {path} ({policy}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", type=int, default=50_000_000)
    ap.add_argument("--distinct", type=int, default=3_000_000)
    ap.add_argument("--policies", default="fifo,belady,lru",
                    help="simulate_file policies, each run on its own ('' for reading only)")
    ap.add_argument("--K", type=int, default=1024)
    ap.add_argument("--dir", default=None, help="where the files go [default: a temporary directory]")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t0 = time.perf_counter()
        ids = make_ids(args.T, args.distinct)
        files = {"txt": os.path.join(tmp, "big.txt"),
                 "oracle.zst": os.path.join(tmp, "big.oracleGeneral.zst"),
                 "oracle.zst, no content size": os.path.join(tmp, "big_nosize.oracleGeneral.zst")}
        write_txt(files["txt"], ids)
        write_oracle_zst(files["oracle.zst"], ids, True)
        write_oracle_zst(files["oracle.zst, no content size"], ids, False)
        warm = {k: os.path.join(tmp, "warm" + os.path.basename(p)[3:]) for k, p in files.items()}
        write_txt(warm["txt"], ids[:1000])
        write_oracle_zst(warm["oracle.zst"], ids[:1000], True)
        write_oracle_zst(warm["oracle.zst, no content size"], ids[:1000], False)
        distinct = np.unique(ids).size
        int32_bytes = 4 * args.T
        del ids
        print(f"# T={args.T:,} requests, {distinct:,} distinct ids; int32 size {int32_bytes / 2**20:.0f} MiB; "
              f"files written in {time.perf_counter() - t0:.0f} s")
        for name, path in files.items():
            print(f"#   {name}: {os.path.getsize(path) / 2**20:.0f} MiB")
        print(f"{'file':<30} {'work':<26} {'peak RSS increase':>18} {'x int32':>8} {'seconds':>8}")
        policies = [p for p in args.policies.split(",") if p]
        cases = [(n, "-") for n in files] + [(n, p) for n in ("txt", "oracle.zst") for p in policies]
        worst = 0.0
        for name, policy in cases:
            r = probe(files[name], warm[name], policy, args.K)
            assert r["requests"] == args.T, r
            ratio = r["increase"] / int32_bytes
            worst = max(worst, ratio)
            work = "read_trace" if policy == "-" else f"simulate_file {policy} K={args.K}"
            print(f"{name:<30} {work:<26} {r['increase'] / 2**20:>14.0f} MiB {ratio:>8.2f} {r['seconds']:>8.1f}")
    print(f"# worst: {worst:.2f}x the int32 size (target < 3)")
    return 0 if worst < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
