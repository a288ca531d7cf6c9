"""Compile every Triton kernel specialisation for sm_80 and sm_90, no GPU needed.

Specs are discovered from every module of the ``kernels`` package that defines
a module-level ``AOT_SPECS`` list of dicts::

    dict(name="simulate lru K<=8", fn=_simulate_kernel,
         signature={"trace_ptr": "*i32", "B": "i32", ...},   # every non-constexpr argument
         constexprs={"MODE": 0, "BLOCK_K": 8},              # every constexpr argument
         num_warps=1)                                       # optional, default 4

Each spec is compiled with ``triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))``,
the PTX goes through the bundled ``ptxas -v`` for its register and spill counts,
and one row is printed per spec and target::

    kernel spec sm_80|sm_90 ptx_bytes regs spill_bytes

(``kernel`` is ``module:function``; ``spill_bytes`` = ptxas' spill stores.)
Exits non-zero if any spec fails to compile or assemble.

    python scripts/compile_kernels.py [--filter TEXT] [--arch 80,90] [--jobs N]
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

os.environ.pop("TRITON_INTERPRET", None)  # real compilation, even when run from an interpreter test session
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
warnings.filterwarnings("ignore", module="triton")


def discover(package: str = "kernels"):
    """[(module name, index, spec)] from every module of ``package`` with AOT_SPECS."""
    pkg = importlib.import_module(package)
    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{package}.{info.name}")
        for index, spec in enumerate(getattr(mod, "AOT_SPECS", ())):
            found.append((mod.__name__, index, spec))
    return found


def ptxas_info(ptx: str, arch: int) -> tuple[int, int]:
    """(registers, spill-store bytes) from ``ptxas -v`` on ``ptx``."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        sm = re.search(r"^\.target\s+(\w+)", ptx, re.M).group(1)  # sm_90a for Hopper
        proc = subprocess.run([get_ptxas(arch).path, "-v", f"--gpu-name={sm}", src, "-o", os.path.join(tmp, "k.cubin")],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed: {proc.stderr.strip().splitlines()[-1:]}")
    regs = re.findall(r"Used (\d+) registers", proc.stderr)
    spills = re.findall(r"(\d+) bytes spill stores", proc.stderr)
    return max(map(int, regs)), sum(map(int, spills))


def compile_spec(spec: dict, arch: int):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = dict(spec["signature"])
    signature.update({k: "constexpr" for k in spec["constexprs"]})
    src = ASTSource(fn=spec["fn"], signature=signature, constexprs=dict(spec["constexprs"]))
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=dict(num_warps=spec.get("num_warps", 4)))
    ptx = compiled.asm["ptx"]
    regs, spills = ptxas_info(ptx, arch)
    return len(ptx.encode()), regs, spills


def _job(module: str, index: int, arch: int):
    """Worker: compile spec ``index`` of ``module`` for ``arch``; returns (row fields) or raises."""
    spec = importlib.import_module(module).AOT_SPECS[index]
    return compile_spec(spec, arch)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filter", default="", help="only specs whose 'module:function spec' contains this text")
    ap.add_argument("--arch", default="80,90", help="compute capabilities, comma-separated")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile processes")
    args = ap.parse_args(argv)
    archs = [int(a) for a in args.arch.split(",")]
    try:
        specs = discover()
    except Exception as e:  # an unimportable kernel module is a failure, not a traceback
        print(f"error: cannot import kernel modules: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    jobs = []
    for module, index, spec in specs:
        kernel = f"{module}:{spec['fn'].__name__}"
        if args.filter in f"{kernel} {spec['name']}":
            jobs += [(f"{kernel} {spec['name'].replace(' ', '_')} sm_{arch}", module, index, arch) for arch in archs]
    failures = 0
    rows = 0
    start = time.time()
    print("kernel spec arch ptx_bytes regs spill_bytes")
    # spawn: workers must not inherit a parent's triton state
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_job, module, index, arch) for _, module, index, arch in jobs]
        for (label, *_), fut in zip(jobs, futures):
            try:
                ptx_bytes, regs, spills = fut.result()
            except Exception as e:
                failures += 1
                msg = str(e).strip().splitlines()
                print(f"{label} FAILED {type(e).__name__}: {msg[-1] if msg else ''}", flush=True)
                continue
            rows += 1
            print(f"{label} {ptx_bytes} {regs} {spills}", flush=True)
    print(f"# {rows} compiled, {failures} failed, {time.time() - start:.0f}s", file=sys.stderr)
    if rows == 0 and failures == 0:
        print(f"error: no kernel specs match {args.filter!r}", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
