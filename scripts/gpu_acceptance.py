"""The first GPU's acceptance run: kernels against the CPU path at large shapes, benchmarks, a short training.

    python scripts/gpu_acceptance.py OUT_DIR [--cpu-only] [--budget SECONDS]

Writes ``OUT_DIR/report.json`` (rewritten after every part, so a run cut short keeps what it
finished) and ``OUT_DIR/acceptance.log``, and exits 0 when nothing that ran failed.  Parts, in
order, each given its share of ``--budget`` (default 280 s: the whole run fits in 5 minutes) and
what earlier parts left; a check that would start past its part's deadline is reported as
skipped, never silently dropped:

* ``equality``: every registry policy with a kernel, the fused generator (+ beta), env_step, the
  closed loop, the prediction kernel, the prefetch kernel and the prefetch env (4k lanes) on the device,
  each against the CPU path on at most 16k
  of its lanes (64k lanes on the device, K up to 4096, T up to 20k); faults, and on a few
  hundred lanes hits and victims, must be equal.
* ``kernel_tests``: the test suite's kernel tests (``pytest -m interpreter``), which run on CUDA
  when there is a GPU.
* ``bench_simulate``: requests/s per policy from 16k to 1M lanes (the kernel on the ``[T, B]``
  layout and the fused generator) and the fraction achieved of the device's memory and
  integer-issue rooflines (bytes and PTX instructions per request counted as in
  ``scripts/bench_simulate.py``).
* ``bench_rollout``: decisions/s of the paging environment with the controller, 1k-64k lanes.
* ``train``: a short ``gpupage train --device cuda`` and its seconds per PPO iteration.

Needs torch, triton, numba and numpy only; a part that needs anything else (pytest, click...)
is skipped and says so.  Without CUDA (or with ``--cpu-only``) the same checks run on tiny
shapes under ``TRITON_INTERPRET=1`` and the benchmarks on the CPU, with the CUDA-only parts
reported as skipped.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# bytes/s and clock (Hz) by device name; SMs come from the device, 64 INT32 lanes an SM (sm_80, sm_90)
PEAKS = {"H200": (4.8e12, 1.98e9), "H100 PCIe": (2.0e12, 1.755e9), "H100": (3.35e12, 1.98e9),
         "A100": (2.04e12, 1.41e9)}
OPTIONAL = ("pytest", "click", "tqdm", "matplotlib", "ray", "libcachesim")


@dataclass(frozen=True)
class Shapes:
    lanes: int  # the register-path and fused checks' lanes on the device
    Ks: tuple  # their per-lane K, in turn
    stride: int  # every stride-th of them is compared with the CPU path
    T: int
    hits_lanes: int  # lanes whose hits and victims are compared too
    long_lanes: int
    long_T: int
    big_lanes: int
    big_T: int
    big_M: int
    big_Ks: tuple
    env_lanes: int
    env_T: int
    loop_lanes: int
    loop_T: int
    pred_lanes: int
    pred_T: int
    bench_lanes: tuple
    bench_T: int
    rollout_lanes: tuple
    rollout_T: int
    train_lanes: int
    train_T: int


CUDA_SHAPES = Shapes(lanes=65536, Ks=(1, 2, 5, 8, 13, 16, 31, 32, 47, 64), stride=4, T=4000, hits_lanes=512, long_lanes=4096, long_T=20000, big_lanes=96,
                     big_T=20000, big_M=6000, big_Ks=(100, 1030, 4096), env_lanes=16384, env_T=2000,
                     loop_lanes=16384, loop_T=2000, pred_lanes=16384, pred_T=5000,
                     bench_lanes=(16384, 131072, 1048576), bench_T=2000, rollout_lanes=(1024, 4096, 16384, 65536),
                     rollout_T=2000, train_lanes=4096, train_T=5000)
# the interpreter runs a program at a time: few lanes (K > 16 is a program a lane for some kernels), short traces
TINY_SHAPES = Shapes(lanes=8, Ks=(1, 3, 8, 5), stride=2, T=20, hits_lanes=2, long_lanes=1, long_T=60, big_lanes=1,
                     big_T=40, big_M=200, big_Ks=(70,), env_lanes=3, env_T=60, loop_lanes=3, loop_T=30, pred_lanes=2,
                     pred_T=40, bench_lanes=(256,), bench_T=500, rollout_lanes=(8,), rollout_T=100, train_lanes=8,
                     train_T=60)
LONG_KS = (4, 8, 16, 64)
PREDICTION_OPTIONS = {"eta": 1.0, "replace": 0.1}
PREDICTING = ("blind_oracle", "predictive_marker")


class Run:
    """The report and its log, the clock, and the device."""

    def __init__(self, out_dir: str, cuda: bool, budget: float):
        self.out = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.cuda = cuda
        self.dev = "cuda" if cuda else "cpu"
        self.shapes = CUDA_SHAPES if cuda else TINY_SHAPES
        self.start = time.time()
        self.end = self.start + budget
        self.logf = open(os.path.join(out_dir, "acceptance.log"), "w")
        # ok: nothing that ran failed or crashed; complete: nothing was cut short by the time budget
        self.report = {"format": "gpupage-gpu-acceptance/1", "mode": "cuda" if cuda else "cpu-only",
                       "budget_s": budget, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "parts": {},
                       "skipped": [], "ok": True, "complete": True}

    def log(self, msg: str) -> None:
        line = f"[{time.time() - self.start:6.1f}s] {msg}"
        print(line, flush=True)
        self.logf.write(line + "\n")
        self.logf.flush()

    def skip(self, what: str, why: str) -> dict:
        self.report["skipped"].append({"what": what, "why": why})
        self.log(f"skipped {what}: {why}")
        return {"status": "skipped", "why": why}

    def sync(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def save(self, name: str | None = None, result: dict | None = None) -> None:
        if name is not None:
            self.report["parts"][name] = result
            if result.get("status") in ("failed", "error"):
                self.report["ok"] = False
            if result.get("status") in ("timeout", "partial") or any(
                    c.get("why") == "time budget" for c in result.get("checks", ())):
                self.report["complete"] = False
        self.report["seconds"] = round(time.time() - self.start, 1)
        path = os.path.join(self.out, "report.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.report, f, indent=1, default=str)
        os.replace(path + ".tmp", path)


def environment(run: Run) -> dict:
    import numba
    import numpy
    import torch
    import triton

    env = {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
           "numba": numba.__version__, "numpy": numpy.__version__, "cpus": os.cpu_count(),
           "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1", "packages": {}}
    for name in OPTIONAL:
        try:
            env["packages"][name] = importlib.metadata.version(name) if importlib.util.find_spec(name) else None
        except importlib.metadata.PackageNotFoundError:
            env["packages"][name] = "present"
    if run.cuda:
        p = torch.cuda.get_device_properties(0)
        env["device"] = {"name": p.name, "capability": f"{p.major}.{p.minor}", "sms": p.multi_processor_count,
                         "memory_gib": round(p.total_memory / 2**30, 1), "count": torch.cuda.device_count()}
    missing = [n for n, v in env["packages"].items() if v is None]
    if missing:
        run.skip("packages " + ", ".join(missing), "not installed; only the parts that need them are skipped")
    return env


# ----------------------------------------------------------------------------- equality with the CPU path


class Unsupported(Exception):
    """A launcher refused the shape (a documented limit, not a wrong result)."""


class OutOfTime(Exception):
    """The time budget ran out inside a check whose every comparison so far was equal."""


def _checks(run: Run, checks: list, deadline: float) -> dict:
    """Run (name, fn) checks in order until ``deadline``; fn returns a dict with "equal"."""
    rows = []
    for name, fn in checks:
        if time.time() > deadline:
            rows.append({"name": name, "status": "skipped", "why": "time budget"})
            continue
        t0 = time.time()
        try:
            row = fn()
            row = {"name": name, "status": "passed" if row.pop("equal") else "failed", **row}
        except Unsupported as e:
            row = {"name": name, "status": "skipped", "why": f"refused by its launcher: {e}"}
        except OutOfTime as e:
            row = {"name": name, "status": "skipped", "why": "time budget", "detail": str(e)}
        except Exception as e:  # a crash is a finding, not the end of the run
            row = {"name": name, "status": "error", "error": f"{type(e).__name__}: {str(e).strip()[:500]}"}
            run.logf.write(traceback.format_exc())
        row["seconds"] = round(time.time() - t0, 2)
        rows.append(row)
        run.log(f"  {row['status']:7s} {name} ({row['seconds']} s){' ' + row.get('why', row.get('error', '')) if row['status'] not in ('passed',) else ''}")
    status = ("error" if any(r["status"] == "error" for r in rows) else
              "failed" if any(r["status"] == "failed" for r in rows) else "passed")
    return {"status": status, "passed": sum(r["status"] == "passed" for r in rows),
            "failed": sum(r["status"] in ("failed", "error") for r in rows),
            "skipped": sum(r["status"] == "skipped" for r in rows), "checks": rows}


def _first_difference(a, b) -> str:
    import torch

    diff = torch.nonzero((a != b).reshape(a.shape[0], -1).any(1)).flatten()
    return f"{diff.numel()} lanes differ, first lane {int(diff[0])}" if diff.numel() else ""


def _simulate_check(run: Run, policy: str, traces, K, seeds, candidates: int = 0):
    """The kernel on every lane against the CPU path on every stride-th lane (faults), and on the
    first hits_lanes of those (hits and victims); ``candidates``: the learned policy's."""
    import torch

    from gpupage.core.simulate import simulate

    from gpupage.core.policies import POLICIES

    options = PREDICTION_OPTIONS if policy in PREDICTING else None
    if POLICIES[policy].needs_checkpoint:  # the shipped learned network
        options = {"checkpoint": os.path.join(ROOT, "checkpoints", "learned_v1.pt"), "candidates": candidates or None}

    def call(tr, k, sd, backend, hits=False):
        try:
            return simulate(tr, policy, k, seed=sd, backend=backend, return_hits=hits, options=options)
        except ValueError as e:
            if backend == "triton":
                raise Unsupported(str(e).splitlines()[0]) from None
            raise

    B = traces.shape[0]
    idx = torch.arange(0, B, run.shapes.stride if B > run.shapes.hits_lanes else 1)
    sub = [seeds[i] for i in idx.tolist()]
    tri = call(traces.to(run.dev), K.to(run.dev), seeds, "triton").faults.cpu()[idx]
    cpu = call(traces[idx], K[idx], sub, "cpu").faults
    h = idx[:run.shapes.hits_lanes]
    a = call(traces[h].to(run.dev), K[h].to(run.dev), sub[:len(h)], "triton", True)
    b = call(traces[h], K[h], sub[:len(h)], "cpu", True)
    same = {"faults": torch.equal(tri, cpu), "hits": torch.equal(a.hits.cpu(), b.hits),
            "victims": torch.equal(a.victims.cpu(), b.victims)}
    row = {"equal": all(same.values()), "lanes_device": B, "lanes_compared": len(idx), "lanes_hits": len(h),
           "T": traces.shape[1], "K": sorted(set(K.tolist()))}
    if not row["equal"]:
        row["mismatch"] = {k: v for k, v in same.items() if not v} | {"faults": _first_difference(tri, cpu)}
    return row


def equality(run: Run, deadline: float) -> dict:
    import torch

    from gpupage.core.policies import POLICIES
    from gpupage.core.traces import ZipfParams, zipf_traces

    s = run.shapes
    kernels = [name for name, p in POLICIES.items() if p.triton]
    cache = {}

    def zipf(B, T, Ks):
        if (B, T) not in cache:
            seeds = list(range(1000, 1000 + B))
            tr = zipf_traces(ZipfParams(T=T), seed=seeds)
            tr[min(5, B - 1), ::7] = -1  # pads, and a lane that ends early
            tr[min(9, B - 1), T // 2:] = -1
            cache[(B, T)] = tr, seeds
        tr, seeds = cache[(B, T)]
        return tr, torch.tensor([Ks[i % len(Ks)] for i in range(B)]), seeds

    def uniform(B, T, M, Ks):
        g = torch.Generator().manual_seed(7)
        tr = torch.randint(0, M, (B, T), generator=g, dtype=torch.int32)
        return tr, torch.tensor([Ks[i % len(Ks)] for i in range(B)]), list(range(B))

    checks = [(f"simulate {p} register path, {s.lanes} lanes", lambda p=p: _simulate_check(run, p, *zipf(s.lanes, s.T, s.Ks)))
              for p in kernels]
    # the register kernel's candidates (ranked under Triton < 3.9, kernels.learned.RANK_CANDIDATES)
    checks += [(f"simulate learned register path, candidates=4, {s.lanes} lanes",
                lambda: _simulate_check(run, "learned", *zipf(s.lanes, s.T, s.Ks), candidates=4))]
    checks += [(f"fused {p} beta={beta}", lambda p=p, beta=beta: _fused_check(run, p, beta))
               for p in ("lru", "fifo", "lfu", "random", "fixed", "belady") for beta in (0.0, 0.1)]
    checks += [("env_step", lambda: _env_check(run, deadline)),
               *[(f"closed loop {p}", lambda p=p: _loop_check(run, p)) for p in ("lru", "fifo", "lfu", "random", "fixed")],
               ("prediction kernel", lambda: _prediction_check(run))]
    checks += [(f"simulate {p} T={s.long_T}", lambda p=p: _simulate_check(run, p, *zipf(s.long_lanes, s.long_T, LONG_KS)))
               for p in kernels]
    checks += [(f"simulate {p} K up to {max(s.big_Ks)}", lambda p=p: _simulate_check(run, p, *uniform(s.big_lanes, s.big_T, s.big_M, s.big_Ks)))
               for p in kernels]
    checks += [(f"prefetch follow_hint {ev}, {s.lanes} lanes", lambda ev=ev: _prefetch_check(run, ev, *zipf(s.lanes, s.T, s.Ks)))
               for ev in ("lru", "adaptive")]
    checks += [("prefetch env (kernels.prefetch_env)", lambda: _prefetch_env_check(run, deadline))]
    if run.cuda:  # a whole real trace: too long for the interpreter
        checks += [(f"learned cloudPhysics K={k} candidates=64", lambda k=k: _learned_trace_check(run, k))
                   for k in (1024, 4096)]
    return _checks(run, checks, deadline)


def _learned_trace_check(run: Run, K: int) -> dict:
    """The chunked learned kernel scoring only its 64 candidates on the whole cloudPhysics trace: hits and
    victims against the CPU path, and both wall-clock times."""
    import torch

    from gpupage.core.io import read_trace
    from gpupage.core.simulate import simulate

    path = os.path.join(ROOT, "..", "shared", "traces", "cloudPhysicsIO.txt")
    if not os.path.exists(path):
        raise Unsupported(f"no {path}")
    ids = torch.from_numpy(read_trace(path).ids)
    options = {"checkpoint": os.path.join(ROOT, "checkpoints", "learned_k16.pt"), "candidates": 64}
    out = {}
    for backend, tr in (("triton", ids.to(run.dev)), ("cpu", ids)):
        t0 = time.time()
        out[backend] = simulate(tr, "learned", K, backend=backend, return_hits=True, options=options)
        if backend == "triton":
            torch.cuda.synchronize()
        out[f"{backend}_s"] = round(time.time() - t0, 2)  # the first call includes compilation
    same = {k: torch.equal(getattr(out["triton"], k).cpu(), getattr(out["cpu"], k)) for k in ("faults", "hits", "victims")}
    return {"equal": all(same.values()), **{f"{k}_equal": v for k, v in same.items()}, "K": K,
            "faults": int(out["cpu"].faults[0]), "triton_s": out["triton_s"], "cpu_s": out["cpu_s"]}


def _prefetch_check(run: Run, eviction: str, traces, K, seeds) -> dict:
    """The prefetch kernel on every lane (hints at eps = 0.1, L = 4) against the CPU path on every stride-th."""
    import torch

    from gpupage.core.prefetch import make_hints, simulate_prefetch

    hints = make_hints(traces, 4, 0.1, 64, seed=seeds)  # the checks' Zipf traces have M = 64
    try:
        tri = simulate_prefetch(traces.to(run.dev), K.to(run.dev), "follow_hint", eviction, hints=hints.to(run.dev),
                                L=4, backend="triton")
    except ValueError as e:
        raise Unsupported(str(e).splitlines()[0]) from None
    B = traces.shape[0]
    idx = torch.arange(0, B, run.shapes.stride if B > run.shapes.hits_lanes else 1)
    cpu = simulate_prefetch(traces[idx], K[idx], "follow_hint", eviction, hints=hints[idx], L=4, backend="cpu")
    same = {k: torch.equal(getattr(tri, k).cpu()[idx], getattr(cpu, k)) for k in ("faults", "prefetches", "evictions")}
    return {"equal": all(same.values()), **{f"{k}_equal": v for k, v in same.items()}, "lanes_device": B,
            "lanes_compared": len(idx), "T": traces.shape[1]}


def _fused_check(run: Run, policy: str, beta: float) -> dict:
    import torch

    from gpupage.core.simulate import simulate
    from gpupage.core.traces import ZipfParams, perturb, zipf_traces
    from kernels.fused import zipf_simulate

    s, params = run.shapes, ZipfParams(T=run.shapes.T)
    seeds = list(range(5000, 5000 + s.lanes))
    K = torch.tensor([s.Ks[i % len(s.Ks)] for i in range(s.lanes)])
    faults, traces = zipf_simulate(params, seeds, policy, K.to(run.dev), beta=beta, device=run.dev, return_traces=True)
    idx = torch.arange(0, s.lanes, s.stride)
    sub = [seeds[i] for i in idx.tolist()]
    ref = zipf_traces(params, seed=sub)
    if beta:
        ref = perturb(ref, beta, params.M, sub)
    same_traces = torch.equal(traces[idx.to(run.dev)].cpu(), ref)
    cpu = simulate(ref, policy, K[idx], seed=sub, backend="cpu").faults
    same_faults = torch.equal(faults.cpu()[idx], cpu)
    return {"equal": same_traces and same_faults, "traces_equal": same_traces, "faults_equal": same_faults,
            "lanes_device": s.lanes, "lanes_compared": len(idx), "T": params.T}


def _env_check(run: Run, deadline: float) -> dict:
    import torch

    from gpupage.controller import env as E
    from gpupage.controller import state as S
    from gpupage.core.traces import ZipfParams, zipf_traces
    from kernels.env_step import env_step

    s, K = run.shapes, 8 if run.cuda else 4
    traces = zipf_traces(ZipfParams(M=64, W=12, shift=300, T=s.env_T), seed=list(range(s.env_lanes)))
    traces[min(2, s.env_lanes - 1), ::7] = -1
    _, st = E.reset_traces(E.EnvParams(K=K), traces)
    cpu = [getattr(st, f).clone() for f in S.STEP_FIELDS]
    tri = [a.clone().to(run.dev) for a in cpu]
    dtr, tab = st.traces.to(run.dev), S.decay_table()
    g = torch.Generator().manual_seed(3)
    steps = 0
    while time.time() < deadline:
        action = torch.randint(0, K, (s.env_lanes,), generator=g)
        if steps % 3 == 0:
            action[::4] = -1  # lanes that only advance this step
        E.advance_cpu(action.numpy(), st.traces.numpy(), *[a.numpy() for a in cpu], tab.numpy(), S.CAP)
        env_step(action.to(run.dev), dtr, *tri, tab.to(run.dev), S.CAP)
        steps += 1
        bad = [f for f, a, b in zip(S.STEP_FIELDS, cpu, tri) if not torch.equal(a, b.cpu())]
        if bad:
            return {"equal": False, "steps": steps, "fields_differ": bad, "lanes": s.env_lanes}
        if bool(cpu[S.STEP_FIELDS.index("done")].all()):
            return {"equal": True, "steps": steps, "lanes": s.env_lanes, "T": s.env_T, "K": K}
    raise OutOfTime(f"cut short after {steps} equal steps")


def _prefetch_env_check(run: Run, deadline: float) -> dict:
    """The prefetch env's triton backend against its numba one, random prefetch bits and victims, every step."""
    import torch

    from gpupage.controller.prefetch_env import PrefetchEnv
    from gpupage.core.prefetch import make_hints
    from gpupage.core.traces import ZipfParams, zipf_traces

    B, T, K = min(run.shapes.env_lanes, 4096), run.shapes.env_T, 8 if run.cuda else 3
    traces = zipf_traces(ZipfParams(M=64, W=12, shift=300, T=T), seed=list(range(B)))
    traces[min(2, B - 1), ::7] = -1
    hints = make_hints(traces, 4, 0.1, 64, seed=list(range(B)))
    cpu = PrefetchEnv(traces, hints, 4, K, backend="cpu")
    tri = PrefetchEnv(traces.to(run.dev), hints.to(run.dev), 4, K, backend="triton")
    g = torch.Generator().manual_seed(5)
    steps = 0
    while time.time() < deadline:
        pf, vic = torch.randint(0, 2, (B,), generator=g), torch.randint(-1, K, (B,), generator=g)
        a, b = cpu.step(pf, vic), tri.step(pf.to(run.dev), vic.to(run.dev))
        steps += 1
        bad = [n for n, x, y in zip(("obs_global", "obs_slots", "reward", "done"), a, b) if not torch.equal(x, y.cpu())]
        if bad:
            return {"equal": False, "steps": steps, "fields_differ": bad, "lanes": B}
        if bool(a[3].all()):
            return {"equal": True, "steps": steps, "lanes": B, "T": T, "K": K}
    raise OutOfTime(f"cut short after {steps} equal steps")


def _loop_check(run: Run, policy: str) -> dict:
    import torch

    from gpupage.core.traces import ZipfParams
    from gpupage.experiments.closedloop import ClosedLoopParams, closed_loop

    s = run.shapes
    params = ClosedLoopParams(ZipfParams(T=s.loop_T), sigma=0.5, degree=3)
    seeds = list(range(s.loop_lanes))
    cpu = closed_loop(params, policy, 8, seed=seeds, return_hits=True)
    tri = closed_loop(params, policy, 8, seed=seeds, return_hits=True, backend="triton", device=run.dev)
    same = {k: torch.equal(getattr(tri, k).cpu(), getattr(cpu, k)) for k in ("faults", "traces", "hits")}
    return {"equal": all(same.values()), **{f"{k}_equal": v for k, v in same.items()}, "lanes": s.loop_lanes,
            "T": s.loop_T}


def _prediction_check(run: Run) -> dict:
    import numpy as np
    import torch

    from gpupage.core.rng import lane_keys
    from gpupage.core.traces import ZipfParams, zipf_traces
    from gpupage.zoo.predictions import predict_next_arrivals
    from kernels.predictions import predict_next_arrivals as on_device

    s = run.shapes
    seeds = list(range(s.pred_lanes))
    traces = zipf_traces(ZipfParams(T=s.pred_T), seed=seeds)
    keys = lane_keys(seeds, len(seeds))
    same = {}
    for options in ({"eta": 0.0}, PREDICTION_OPTIONS, {"eta": 40.0}):
        cpu = predict_next_arrivals(traces.numpy(), keys, options)
        tri = on_device(traces.t().contiguous().to(run.dev), torch.from_numpy(keys).to(run.dev), options)
        same[str(options)] = bool(np.array_equal(tri.t().cpu().numpy(), cpu))
    return {"equal": all(same.values()), "options_equal": same, "lanes": s.pred_lanes, "T": s.pred_T}


# ----------------------------------------------------------------------------- the test suite's kernel tests


def kernel_tests(run: Run, deadline: float) -> dict:
    if not run.cuda:
        return run.skip("kernel_tests", "no CUDA: CI runs these tests under the Triton interpreter")
    try:
        import pytest  # noqa: F401
    except ImportError:
        return run.skip("kernel_tests", "pytest is not installed (the equality part covers the kernels)")
    files = ["tests/test_kernels.py", "tests/test_kernels_fused.py", "tests/test_env_kernel.py",
             "tests/test_closedloop.py", "tests/test_heuristics.py", "tests/test_baselines.py", "tests/test_modern.py",
             "tests/test_prefetch_kernel.py", "tests/test_prefetch_env_kernel.py"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "interpreter", "-p", "no:cacheprovider", "-rfE", *files]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, deadline - time.time()))
        out, status = proc.stdout + proc.stderr, ("passed" if proc.returncode == 0 else "failed")
    except subprocess.TimeoutExpired as e:
        out, status = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    run.logf.write(out)
    lines = out.strip().splitlines()
    progress = "".join(ln for ln in lines if ln and set(ln.split()[0]) <= set(".FEsx"))
    return {"status": status, "summary": lines[-1] if lines else "", "passed": progress.count("."),
            "failed": progress.count("F") + progress.count("E"),
            "failures": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:50]}


# ----------------------------------------------------------------------------- benchmarks


def _timed(run: Run, fn, repeat=3) -> float:
    best = float("inf")
    for _ in range(repeat):
        run.sync()
        t0 = time.perf_counter()
        fn()
        run.sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _peaks(run: Run) -> dict:
    import torch

    p = torch.cuda.get_device_properties(0)
    name = next((k for k in PEAKS if k in p.name), None)
    if name is None:
        return {"device": p.name, "known": False}
    bw, clock = PEAKS[name]
    return {"device": p.name, "known": True, "memory_bytes_per_s": bw, "int32_ops_per_s": p.multi_processor_count * 64 * clock,
            "assumed": f"{name}: {bw:.3g} B/s, {p.multi_processor_count} SMs x 64 INT32 lanes x {clock:.3g} Hz"}


def bench_simulate(run: Run, deadline: float) -> dict:
    import torch

    from gpupage.core.policies import get_policy
    from gpupage.core.simulate import simulate
    from gpupage.core.traces import ZipfParams, zipf_traces

    s, K, rows = run.shapes, 8, []
    params = ZipfParams(T=s.bench_T)
    policies = ("belady", "lru", "lfu", "fifo", "random", "fixed")
    if not run.cuda:  # the CPU path only: the kernels under the interpreter are no benchmark
        run.skip("bench_simulate on CUDA", "no CUDA: CPU path only")
        for B in s.bench_lanes:
            traces = zipf_traces(params, seed=0, batch=B)
            simulate(traces[:2], "lru", K, backend="cpu")  # numba compile / cache load outside the timing
            for p in policies:
                sec = _timed(run, lambda p=p: simulate(traces, p, K, backend="cpu"))
                rows.append({"policy": p, "backend": "cpu", "lanes": B, "T": s.bench_T, "K": K,
                             "requests_per_s": B * s.bench_T / sec})
        return {"status": "passed", "rows": rows}
    import bench_simulate as bs  # PTX instruction counts per request, as the benchmark script counts them

    from gpupage.core.rng import lane_keys
    from kernels.fused import M_NONE, launch_zipf, zipf_simulate
    from kernels.simulate import M_AUX, MODE_OF, aux_keys, launch_simulate

    peaks = _peaks(run)
    status = "passed"
    for B in s.bench_lanes:
        if time.time() > deadline:
            run.skip(f"bench_simulate at {B} lanes", "time budget")
            status = "partial"
            break
        keys = torch.from_numpy(lane_keys(0, B)).to(run.dev)
        tb = launch_zipf(params, keys, M_NONE, None, 1, 0, True)[1]  # [T, B] generated on the device
        Ks = torch.full((B,), K, dtype=torch.int64, device=run.dev)
        for p in policies:
            code = get_policy(p).code
            mode = MODE_OF[code]
            aux = None
            if mode == M_AUX:  # per-request keys, computed in chunks of lanes (their sorts are large)
                aux = torch.empty_like(tb)
                for lo in range(0, B, 131072):
                    aux[:, lo:lo + 131072] = aux_keys(tb[:, lo:lo + 131072].t(), code).t()
            launch_simulate(tb, aux, mode, Ks, keys, K, False)  # compile
            rate = B * s.bench_T / _timed(run, lambda: launch_simulate(tb, aux, mode, Ks, keys, K, False))
            rows.append(_roofline_row(bs, peaks, p, "kernel", B, s.bench_T, K, rate))
            if p != "belady":
                zipf_simulate(params, 0, p, K, batch=64, device=run.dev)  # compile
                rate = B * s.bench_T / _timed(run, lambda: zipf_simulate(params, 0, p, K, batch=B, device=run.dev))
                rows.append(_roofline_row(bs, peaks, p, "fused", B, s.bench_T, K, rate))
            del aux
        del tb
        torch.cuda.empty_cache()
    # the [B, T] API, its transposes included, for LRU
    traces = zipf_traces(params, seed=0, batch=s.bench_lanes[0]).to(run.dev)
    simulate(traces, "lru", K)
    rate = traces.numel() / _timed(run, lambda: simulate(traces, "lru", K).faults)
    rows.append({"policy": "lru", "backend": "simulate([B, T])", "lanes": traces.shape[0], "T": s.bench_T, "K": K,
                 "requests_per_s": rate})
    for r in rows:
        run.log(f"  {r['policy']:7s} {r['backend']:17s} {r['lanes']:8d} lanes {r['requests_per_s']:10.3g} req/s"
                + (f"  memory {r['memory_fraction']:.3f} issue {r['issue_fraction']:.3f}" if "issue_fraction" in r else ""))
    return {"status": status, "peaks": peaks, "rows": rows}


def _roofline_row(bs, peaks: dict, policy: str, backend: str, B: int, T: int, K: int, rate: float) -> dict:
    nbytes, instr, _, _ = bs.roofline(policy, K, backend == "fused")
    row = {"policy": policy, "backend": backend, "lanes": B, "T": T, "K": K, "requests_per_s": rate,
           "bytes_per_request": nbytes, "ptx_instructions_per_request": instr}
    if peaks.get("known"):
        row["memory_fraction"] = rate * nbytes / peaks["memory_bytes_per_s"]
        row["issue_fraction"] = rate * instr / peaks["int32_ops_per_s"]
    return row


def bench_rollout(run: Run, deadline: float) -> dict:
    import torch

    from bench_rollout import rollout
    from gpupage.controller.network import ControllerConfig, PageController
    from gpupage.core.traces import ZipfParams, zipf_traces

    s, rows, status = run.shapes, [], "passed"
    torch.manual_seed(0)
    model = PageController(ControllerConfig()).eval().to(run.dev)
    for B in s.rollout_lanes:
        if time.time() > deadline:
            run.skip(f"bench_rollout at {B} lanes", "time budget")
            status = "partial"
            break
        traces = zipf_traces(ZipfParams(T=s.rollout_T), seed=list(range(B))).to(run.dev)
        rollout(model, traces[:2], 8, run.dev)  # compile / warm up
        d, r, sec = rollout(model, traces, 8, run.dev)
        rows.append({"lanes": B, "T": s.rollout_T, "K": 8, "decisions_per_s": d / sec, "requests_per_s": r / sec,
                     "seconds": sec})
        run.log(f"  rollout {B:6d} lanes: {d / sec:10.3g} decisions/s, {r / sec:10.3g} requests/s")
    return {"status": status, "device": run.dev, "rows": rows}


def train(run: Run, deadline: float) -> dict:
    """``gpupage train`` (a behaviour-cloning round, then PPO) when its CLI's packages are here; else the
    same PPO iterations through the library."""
    s = run.shapes
    iters = 3
    cli = all(run.report["environment"]["packages"].get(p) for p in ("click", "tqdm", "matplotlib"))
    if cli:
        out = os.path.join(run.out, "train")
        shutil.rmtree(out, ignore_errors=True)  # this script's own scratch run; `train` refuses to replace a checkpoint
        cmd = [sys.executable, "-m", "gpupage", "train", "--out", os.path.join(out, "c.pt"), "--device", run.dev,
               "--bc-rounds", "0", "--bc-lanes", str(max(16, s.train_lanes // 16)), "--bc-epochs", "1",
               "--ppo-iterations", str(iters), "--lanes", str(s.train_lanes), "--val-every", "0",
               "--T", str(s.train_T), "--quiet"]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "command": " ".join(cmd[2:])}
        run.logf.write(proc.stdout + proc.stderr)
        if proc.returncode:
            return {"status": "failed", "command": " ".join(cmd[2:]), "stderr": proc.stderr.strip()[-2000:]}
        with open(os.path.join(out, "train_log.csv"), newline="") as f:
            log = list(csv.DictReader(f))
        t = [float(r["seconds"]) for r in log]
        ppo = [b - a for a, b, r in zip(t, t[1:], log[1:]) if r["stage"] == "ppo"]
        result = {"status": "passed", "via": "gpupage train", "command": " ".join(cmd[2:]),
                  "bc_round_seconds": t[0], "ppo_seconds_per_iteration": ppo}
    else:
        import torch

        from gpupage.controller.ppo import PPO, PPOConfig

        run.skip("gpupage train (CLI)", "click, tqdm or matplotlib is missing: PPO iterations run through the library")
        runner = PPO(PPOConfig(lanes=s.train_lanes, iterations=iters, device=run.dev,
                               zipf={"T": s.train_T}))
        ppo = []
        for _ in range(iters):
            t0 = time.perf_counter()
            runner.run_iteration()
            run.sync()
            ppo.append(time.perf_counter() - t0)
        result = {"status": "passed", "via": "gpupage.controller.ppo.PPO", "ppo_seconds_per_iteration": ppo,
                  "torch_threads": torch.get_num_threads()}
    result.update(lanes=s.train_lanes, T=s.train_T)
    run.log(f"  PPO seconds per iteration: {', '.join(f'{x:.2f}' for x in result['ppo_seconds_per_iteration'])}")
    return result


PARTS = [("equality", equality, 45), ("kernel_tests", kernel_tests, 20), ("bench_simulate", bench_simulate, 15),
         ("bench_rollout", bench_rollout, 8), ("train", train, 12)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="directory for report.json and acceptance.log")
    ap.add_argument("--cpu-only", action="store_true", help="tiny shapes under TRITON_INTERPRET=1 (automatic without CUDA)")
    ap.add_argument("--budget", type=float, default=280.0, help="seconds for the whole run")
    args = ap.parse_args(argv)
    import torch  # does not import triton: TRITON_INTERPRET can still be set

    cuda = torch.cuda.is_available() and not args.cpu_only
    if cuda:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = "1"
    run = Run(args.out_dir, cuda, args.budget)
    run.log(f"gpupage GPU acceptance, mode {run.report['mode']}, budget {args.budget:.0f} s")
    run.report["environment"] = environment(run)
    run.report["shapes"] = asdict(run.shapes)
    run.save()
    for i, (name, fn, weight) in enumerate(PARTS):
        left = run.end - time.time()
        deadline = time.time() + left * weight / sum(w for _, _, w in PARTS[i:])
        run.log(f"{name}: until +{deadline - run.start:.0f} s")
        t0 = time.time()
        try:
            result = fn(run, deadline)
        except Exception as e:
            run.logf.write(traceback.format_exc())
            result = {"status": "error", "error": f"{type(e).__name__}: {str(e).strip()[:500]}"}
        result["seconds"] = round(time.time() - t0, 1)
        run.log(f"{name}: {result['status']} ({result['seconds']} s)")
        run.save(name, result)
    run.log(f"done in {time.time() - run.start:.0f} s: {'OK' if run.report['ok'] else 'FAILURES'}"
            f"{'' if run.report['complete'] else ' (some checks cut short by the time budget)'}; "
            f"report {os.path.join(run.out, 'report.json')}")
    return 0 if run.report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
