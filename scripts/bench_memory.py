"""Peak memory a CPU ``simulate`` call adds to its input, as a multiple of the int32 trace.

Each case runs in a fresh process: it compiles the policy on a small trace, makes
an int32 trace ``[B, T]`` (App. B Zipf; ``sparse``: the same ids times 2**24, which
``simulate`` must remap), resets the peak RSS to the current RSS (``5`` into
``/proc/self/clear_refs``, so that earlier peaks such as compilation's hide
nothing), reads ``ru_maxrss``, calls ``simulate`` once without ``return_hits``, and
reads it again.  The increase over the trace's own size is the ratio printed
(target: at most 0.5).

Run it from the root of the tree measured (its processes import ``gpupage`` from
the working directory first); only the public API is used, so an older tree runs
it too::

    PYTHONPATH=. python scripts/bench_memory.py --lanes 20000 --T 5000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

FAMILIES = {
    "scoring (gpupage/cpu.py)": ["lru", "fifo", "lfu", "random", "fixed"],
    "next-use (needs_future)": ["belady"],
    "baselines": ["arc", "clock"],
    "adaptive": ["adaptive"],
    "predictions (needs_future)": ["blind_oracle", "predictive_marker"],
}

CHILD = """
import json, resource, sys, time
import gpupage
policy, B, T, sparse = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
small = gpupage.zipf_traces(gpupage.ZipfParams(T=200), seed=[1, 2])
gpupage.simulate(small * (1 << 24) if sparse else small, policy, 8)  # compile (or load) before measuring
tr = gpupage.zipf_traces(gpupage.ZipfParams(T=T), seed=0, batch=B)
if sparse:
    tr.mul_(1 << 24)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
gpupage.simulate(tr, policy, 8)
seconds = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"trace": tr.numel() * 4, "extra": after - before, "seconds": seconds}))
"""


def measure(policy: str, lanes: int, T: int, sparse: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, policy, str(lanes), str(T), "1" if sparse else "0"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lanes", type=int, default=20000)
    ap.add_argument("--T", type=int, default=5000)
    ap.add_argument("--policies", default=None, help="comma list [default: every family above]")
    args = ap.parse_args()
    cases = [(fam, p, False) for fam, ps in FAMILIES.items() for p in ps]
    cases.append(("sparse ids (remapped)", "lru", True))
    if args.policies:
        wanted = args.policies.split(",")
        cases = [c for c in cases if c[1] in wanted]
    print(f"int32 trace [{args.lanes}, {args.T}] = {args.lanes * args.T * 4 / 2**30:.2f} GiB")
    print(f"{'family':<28} {'policy':<18} {'extra GiB':>9} {'ratio':>6} {'seconds':>8}")
    for fam, policy, sparse in cases:
        r = measure(policy, args.lanes, args.T, sparse)
        print(f"{fam:<28} {policy:<18} {r['extra'] / 2**30:>9.3f} {r['extra'] / r['trace']:>6.2f} {r['seconds']:>8.1f}",
              flush=True)


if __name__ == "__main__":
    main()
