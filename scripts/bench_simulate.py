"""Simulation throughput (requests/s) per policy and backend, against libCacheSim in the same run.

For every policy: our CPU path (numba), on CUDA the Triton kernel (and for the
online policies the fused Zipf generator+simulator, which reads no trace at
all), beside libCacheSim's C simulator on the same requests: the lanes
concatenated, each lane's ids shifted into a range of its own, one cache of K
blocks (for LRU, FIFO and Belady a lane's blocks are never reused, so they
behave as empty slots and the fault counts match ours; they are printed too).
libCacheSim is a single sequential cache, so its requests/s does not depend on
B; it runs on the first ``--lcs-lanes`` lanes to keep the trace file small.
Fixed has no libCacheSim twin and is compared with its FIFO.

Roofline estimates for an H100 SXM (printed everywhere, measured fractions on
CUDA): memory = HBM bandwidth / bytes read per request; integer issue =
INT32 lanes per second / PTX instructions per request, counted statically in
the time loop of the compiled kernel (no GPU needed to count them).

    python scripts/bench_simulate.py [--quick] [--B 1000,16000,128000] [--T 5000] [--K 8]
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import tempfile
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.pop("TRITON_INTERPRET", None)  # a benchmark of real backends; the PTX counts need real compilation
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
warnings.filterwarnings("ignore", module="triton")

from gpupage.core.policies import BELADY, LFU, get_policy  # noqa: E402
from gpupage.core.simulate import simulate  # noqa: E402
from gpupage.core.traces import ZipfParams, zipf_traces  # noqa: E402

POLICIES = ("belady", "lru", "lfu", "fifo", "random", "fixed")
LCS = {"belady": "Belady", "lru": "LRU", "lfu": "LFU", "fifo": "FIFO", "random": "Random", "fixed": "FIFO"}
H100_HBM = 3.35e12  # bytes/s, H100 SXM5
H100_INT = 132 * 64 * 1.755e9  # INT32 lane-ops/s: 132 SMs x 64 INT32 lanes x boost clock
CLOUD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "traces", "cloudPhysicsIO.txt")


def timed(fn, sync=False, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def loop_instructions(ptx: str) -> int:
    """PTX instructions in one iteration of the kernel's outermost loop, nested loops
    (the fused kernel's once-per-phase working-set rebuild) left out; for the fused
    kernel an upper bound, as the rebuild's code outside its loop is counted."""
    lines = ptx.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^(\$L__\w+):", line.strip()))}
    ends = {}  # loop head line -> its last backward branch
    for i, line in enumerate(lines):
        m = re.search(r"\bbra(?:\.uni)?\s+(\$L__\w+);", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            ends[labels[m.group(1)]] = i
    loops = list(ends.items())
    if not loops:
        return 0
    outer = max(loops, key=lambda se: se[1] - se[0])
    inner = [se for se in loops if se != outer and outer[0] <= se[0] and se[1] <= outer[1]]

    def count(a, b):
        return sum(1 for line in lines[a:b + 1]
                   if line.strip().endswith(";") and not line.strip().startswith((".", "//", "$")))

    return count(*outer) - sum(count(*se) for se in inner)


def ptx_of(module: str, name: str) -> str:
    """PTX (sm_90) of the AOT spec ``name`` of ``kernels.<module>``, compiled without a GPU."""
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec = next(s for s in importlib.import_module(f"kernels.{module}").AOT_SPECS if s["name"] == name)
    sig = dict(spec["signature"])
    sig.update({k: "constexpr" for k in spec["constexprs"]})
    src = ASTSource(fn=spec["fn"], signature=sig, constexprs=dict(spec["constexprs"]))
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=spec.get("num_warps", 4))).asm["ptx"]


@functools.lru_cache(maxsize=None)
def roofline(policy: str, K: int, fused: bool):
    """(bytes read per request, PTX instructions per request, est. memory-bound and issue-bound requests/s on H100)."""
    from kernels.simulate import MODE_NAMES, MODE_OF, block_shape

    code = get_policy(policy).code
    bk = block_shape(K)[0]
    if fused:
        mode = "lfu" if code == LFU else MODE_NAMES[MODE_OF[code]]
        name, nbytes = f"zipf {mode} K<={bk} W<=16", (8 if code == LFU else 0)  # LFU: count load + store
    else:
        name = f"simulate {MODE_NAMES[MODE_OF[code]]} K<={bk}"
        nbytes = 8 if code in (LFU, BELADY) else 4  # trace (+ precomputed key)
    instr = loop_instructions(ptx_of("fused" if fused else "simulate", name))
    return nbytes, instr, (H100_HBM / nbytes if nbytes else float("inf")), H100_INT / max(instr, 1)


def lcs_run(policy: str, path: str, K: int):
    import libcachesim as lcs

    reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
    cache = getattr(lcs, LCS[policy])(cache_size=K, hashpower=16)
    t0 = time.perf_counter()
    miss_ratio, _ = cache.process_trace(reader)
    return time.perf_counter() - t0, miss_ratio


def check_libcachesim(tmp: str) -> str:
    """libCacheSim on cloudPhysicsIO at K=7 against the published counts (Belady 103704, LRU 108525)."""
    from gpupage.core.io import read_trace, write_oracle

    if not os.path.exists(CLOUD):
        return "cloudPhysicsIO.txt not present: check skipped"
    trace = read_trace(CLOUD)
    path = os.path.join(tmp, "cloud.oracleGeneral")
    write_oracle(path, trace.original[trace.ids])
    got = {p: round(lcs_run(p, path, 7)[1] * trace.ids.size) for p in ("belady", "lru")}
    ok = got == {"belady": 103704, "lru": 108525}
    return f"cloudPhysicsIO K=7 libCacheSim faults {got} ({'OK' if ok else 'MISMATCH'}: Belady 103704, LRU 108525)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--B", default="1000,16000,128000", help="lane counts, comma-separated")
    ap.add_argument("--T", type=int, default=5000)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--lcs-lanes", type=int, default=2000, help="lanes fed to libCacheSim (its speed is B-independent)")
    ap.add_argument("--quick", action="store_true", help="B=1000, T=2000")
    ap.add_argument("--no-roofline", action="store_true", help="skip the PTX instruction counts")
    args = ap.parse_args(argv)
    if args.quick:
        args.B, args.T = "1000", 2000
    try:
        import libcachesim  # noqa: F401
    except ImportError:
        print("libcachesim is not installed (pip install libcachesim): no reference to compare with", file=sys.stderr)
        return 1
    from gpupage.core.io import write_oracle

    policies = [p.strip() for p in args.policies.split(",")]
    for p in policies:
        get_policy(p)
    cuda = torch.cuda.is_available()
    params = ZipfParams(T=args.T)
    print(f"# Zipf M={params.M} W={params.W} alpha={params.alpha} shift={params.shift}, T={args.T}, K={args.K}, "
          f"numba threads={__import__('numba').get_num_threads()}, cuda={cuda}")
    with tempfile.TemporaryDirectory() as tmp:
        print("#", check_libcachesim(tmp))
        if not args.no_roofline:
            print("# H100 roofline ESTIMATES (not measured): bytes/req, PTX instr/req -> memory-bound, issue-bound req/s")
            for p in policies:
                for fused in ((False, True) if p != "belady" else (False,)):
                    nbytes, instr, mem, issue = roofline(p, args.K, fused)
                    kind = "fused" if fused else "triton"
                    print(f"#   {p:7s} {kind:6s} {nbytes:2d} B/req {instr:4d} instr/req -> memory {mem:9.3g}  "
                          f"issue {issue:9.3g}  bound {min(mem, issue):9.3g} req/s")
        print(f"{'B':>7s} {'policy':7s} {'backend':7s} {'req/s':>10s} {'lcs req/s':>10s} {'ours/lcs':>9s} "
              f"{'faults':>10s} {'lcs faults':>10s}")
        for B in (int(b) for b in args.B.split(",")):
            traces = zipf_traces(params, seed=0, batch=B)
            nl = min(B, args.lcs_lanes)
            ids = (traces[:nl].long() + params.M * torch.arange(nl).unsqueeze(1)).reshape(-1).numpy()
            path = os.path.join(tmp, f"zipf_{B}.oracleGeneral")
            write_oracle(path, ids)
            simulate(traces[:2], "lru", args.K, backend="cpu")  # numba compile / cache load outside the timing
            for p in policies:
                lt, miss = lcs_run(p, path, args.K)
                lcs_rate, lcs_faults = ids.size / lt, round(miss * ids.size)
                runs = [("cpu", *timed(lambda: simulate(traces, p, args.K, backend="cpu").faults))]
                if cuda:
                    dt = traces.cuda()
                    simulate(dt[:64], p, args.K, backend="triton")  # compile
                    runs.append(("triton", *timed(lambda: simulate(dt, p, args.K, backend="triton").faults.cpu(),
                                                  sync=True, repeat=3)))
                    if p != "belady":
                        from kernels.fused import zipf_simulate

                        zipf_simulate(params, 0, p, args.K, batch=64)
                        runs.append(("fused", *timed(lambda: zipf_simulate(params, 0, p, args.K, batch=B).cpu(),
                                                     sync=True, repeat=3)))
                for backend, sec, faults in runs:
                    rate = B * args.T / sec
                    ours_faults = int(faults[:nl].sum())
                    print(f"{B:7d} {p:7s} {backend:7s} {rate:10.3g} {lcs_rate:10.3g} {rate / lcs_rate:9.2f} "
                          f"{ours_faults:10d} {lcs_faults:10d}" + ("  (vs lcs FIFO)" if p == "fixed" else ""))
                    if cuda and backend != "cpu" and not args.no_roofline:
                        nbytes, instr, mem, issue = roofline(p, args.K, backend == "fused")
                        print(f"{'':7s} {'':7s} {'':7s} roofline fractions: memory {rate / mem:.3f}, "
                              f"integer issue {rate / issue:.3f}")
                sys.stdout.flush()
            del traces
    return 0


if __name__ == "__main__":
    sys.exit(main())
