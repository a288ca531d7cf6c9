"""What scaling out costs and gains on this machine: Ray's overhead per chunk, a sweep and an mrc on 1
and 2 Ray workers, and seconds per PPO iteration on 1 and 2 torchrun ranks.

* Ray overhead: a sweep of many tiny chunks run through Ray (one single-threaded worker) and in
  this process, alternately; (Ray - local) / chunks.
* Scaling: a sweep of equal chunks on a Ray instance of 1 CPU and of 2 CPUs (single-threaded
  tasks), alternately; the ratio of their times.
* mrc (``--trace``, default ../shared/traces/cloudPhysicsIO.txt): the overhead per chunk as for
  the sweep, with chunks of one FIFO size; and the six default policies at 1024 sizes evenly spaced
  from 1 to the trace's distinct blocks, 64 sizes a chunk (3 one-pass chunks and 48 of lanes), on 1
  and 2 single-threaded workers (the default 64 sizes take under a second: nothing to spread).
* evaluate: ``gpupage evaluate`` of the shipped K=8 controller on 40 seeds (in this process, one
  thread) against one sweep chunk (16384 seeds of lru, fifo and belady, T=5000, K=8) on one thread,
  alternately: whether a multi-seed evaluate is worth cutting into Ray tasks or shards.
* torchrun: ``gpupage train`` PPO only, the same global batch on 1 and 2 gloo ranks (``--nproc``),
  alternately; the median of each run's iteration times after the first.

Wall-clock on a shared machine is noisy: every figure is the median over ``--repeats`` rounds
that alternate the two sides.

    python scripts/bench_distributed.py [--what ray,mrc,evaluate,torchrun] [--repeats 3] [--trace FILE]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gpupage.core.policies import get_policy  # noqa: E402
from gpupage.core.traces import ZipfParams  # noqa: E402
from gpupage.distributed.shard import MRC, SWEEP, write_grid  # noqa: E402
from gpupage.experiments.mrc import mrc_spec  # noqa: E402
from gpupage.experiments.sweep import SweepSpec  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _spec(seeds: int, T: int, policies=("lru",)) -> SweepSpec:
    return SweepSpec([get_policy(p) for p in policies], [8], list(range(seeds)), params=ZipfParams(T=T))


def _sweep_seconds(spec, lanes: int, runner=None, grid=SWEEP) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ran = write_grid(grid, spec, os.path.join(tmp, "s.csv"), lanes=lanes, runner=runner)
        seconds = time.perf_counter() - t0
    assert ran.chunks_run == ran.chunks_total
    return seconds


def _ray(cpus: int, command: str = "sweep"):
    import ray

    from gpupage.distributed.ray_runner import RayRunner

    ray.shutdown()
    ray.init(num_cpus=cpus, log_to_driver=False)
    return RayRunner(command, device="cpu", task_cpus=1)


def bench_ray(repeats: int) -> None:
    import numba
    import ray

    numba.set_num_threads(1)  # the local side runs single-threaded, as one Ray worker does
    tiny, chunks = _spec(200, 100), 200  # a chunk of one lane: nothing but overhead
    runner = _ray(1)
    _sweep_seconds(tiny, 1, runner)  # the worker starts, imports and compiles
    _sweep_seconds(tiny, 1)
    ray_t, local_t = [], []
    for _ in range(repeats):
        ray_t.append(_sweep_seconds(tiny, 1, runner))
        local_t.append(_sweep_seconds(tiny, 1))
    per = [(r - lo) / chunks * 1e3 for r, lo in zip(ray_t, local_t)]
    print(f"ray overhead per chunk: median {statistics.median(per):.2f} ms "
          f"(ray {statistics.median(ray_t):.2f} s, local {statistics.median(local_t):.2f} s for {chunks} chunks; "
          f"each round: {', '.join(f'{p:.2f}' for p in per)} ms)")
    work = _spec(4096, 20000, ("lru", "fifo", "belady"))  # 8 chunks of 512 lanes, most of a second each on one core
    times, ceiling = {1: [], 2: []}, []
    for _ in range(repeats):
        for cpus in (1, 2):
            runner = _ray(cpus)
            _sweep_seconds(_spec(4 * cpus * 64, 20000), 64, runner)  # long enough that every worker starts and warms
            times[cpus].append(_sweep_seconds(work, 512, runner))
        ceiling.append(_machine_ceiling())  # on the 2-CPU instance
    ray.shutdown()
    ratios = [a / b for a, b in zip(times[1], times[2])]
    print(f"sweep on 1 -> 2 single-threaded Ray workers: speed-up median {statistics.median(ratios):.2f}x "
          f"(1 worker {statistics.median(times[1]):.1f} s, 2 workers {statistics.median(times[2]):.1f} s; "
          f"each round: {', '.join(f'{r:.2f}' for r in ratios)}); what the machine gave two pure-Python tasks "
          f"in the same rounds: {statistics.median(ceiling):.2f}x ({', '.join(f'{c:.2f}' for c in ceiling)})")


def bench_mrc(repeats: int, trace: str) -> None:
    import numba
    import ray

    numba.set_num_threads(1)
    tiny = mrc_spec(trace, ["fifo"], "auto")  # 64 chunks of one size: mostly overhead
    chunks = len(tiny.Ks)
    runner = _ray(1, "mrc")
    _sweep_seconds(tiny, 1, runner, MRC)
    _sweep_seconds(tiny, 1, None, MRC)
    ray_t, local_t = [], []
    for _ in range(repeats):
        ray_t.append(_sweep_seconds(tiny, 1, runner, MRC))
        local_t.append(_sweep_seconds(tiny, 1, None, MRC))
    per = [(r - lo) / chunks * 1e3 for r, lo in zip(ray_t, local_t)]
    print(f"mrc: ray overhead per chunk: median {statistics.median(per):.2f} ms (ray {statistics.median(ray_t):.2f} s, "
          f"local {statistics.median(local_t):.2f} s for {chunks} chunks of one fifo size on {os.path.basename(trace)}; "
          f"each round: {', '.join(f'{p:.2f}' for p in per)} ms)")
    distinct = tiny.Ks[-1]
    sizes = sorted({int(round(1 + i * (distinct - 1) / 1023)) for i in range(1024)})
    work = mrc_spec(trace, ["lru", "fifo", "lfu", "arc", "clock", "belady"], sizes)
    times, ceiling = {1: [], 2: []}, []
    for _ in range(repeats):
        for cpus in (1, 2):
            runner = _ray(cpus, "mrc")
            _sweep_seconds(tiny, 8, runner, MRC)  # every worker starts and warms
            times[cpus].append(_sweep_seconds(work, 64, runner, MRC))
        ceiling.append(_machine_ceiling())
    ray.shutdown()
    ratios = [a / b for a, b in zip(times[1], times[2])]
    print(f"mrc, 6 policies x {len(work.Ks)} sizes, 64 sizes a chunk, on 1 -> 2 single-threaded Ray workers: speed-up "
          f"median {statistics.median(ratios):.2f}x (1 worker {statistics.median(times[1]):.1f} s, 2 workers "
          f"{statistics.median(times[2]):.1f} s; each round: {', '.join(f'{r:.2f}' for r in ratios)}); the machine gave "
          f"two pure-Python tasks {statistics.median(ceiling):.2f}x ({', '.join(f'{c:.2f}' for c in ceiling)})")


def bench_evaluate(repeats: int) -> None:
    from click.testing import CliRunner

    from gpupage.cli import main
    from gpupage.core.limits import configure_threads

    args = ["evaluate", "--checkpoint", os.path.join(ROOT, "checkpoints", "pagecontroller_k8.pt"), "--K", "8",
            "--seeds", "1000-1039", "--device", "cpu", "--json", "--threads", "1"]

    def evaluate_seconds():
        t0 = time.perf_counter()
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        return time.perf_counter() - t0

    chunk = _spec(16384, 5000, ("lru", "fifo", "belady"))
    evaluate_seconds()  # imports, compiles, loads the checkpoint once
    configure_threads(1)
    _sweep_seconds(_spec(64, 5000, ("lru", "fifo", "belady")), 64)
    ev, sw = [], []
    for _ in range(repeats):
        ev.append(evaluate_seconds())
        configure_threads(1)
        sw.append(_sweep_seconds(chunk, 16384))
    print(f"evaluate, 40 seeds: median {statistics.median(ev):.2f} s; one sweep chunk of 16384 seeds: "
          f"{statistics.median(sw):.2f} s; evaluate / chunk {statistics.median(e / c for e, c in zip(ev, sw)):.3f} "
          f"(evaluate {', '.join(f'{x:.2f}' for x in ev)}; chunk {', '.join(f'{x:.2f}' for x in sw)})")


def _burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def _machine_ceiling() -> float:
    """Two CPU-bound tasks at once against one, on the running 2-CPU Ray instance: the speed-up this
    machine has to give at the moment (other jobs share its cores)."""
    import ray

    burn = ray.remote(num_cpus=1)(_burn)
    ray.get([burn.remote(10**5) for _ in range(2)])
    t0 = time.perf_counter()
    ray.get(burn.remote(10**7))
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.get([burn.remote(10**7) for _ in range(2)])
    return 2 * one / (time.perf_counter() - t0)


def _train_iteration_seconds(nproc: int, iterations: int, lanes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "gpupage", "train", "--out", os.path.join(tmp, "c.pt"), "--bc-rounds", "-1",
               "--ppo-iterations", str(iterations), "--lanes", str(lanes), "--val-every", "0", "--T", "2000",
               "--device", "cpu", "--quiet", "--nproc", str(nproc)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        with open(os.path.join(tmp, "train_log.csv"), newline="") as f:
            t = [float(r["seconds"]) for r in csv.DictReader(f)]
    return statistics.median(b - a for a, b in zip(t, t[1:]))


def bench_torchrun(repeats: int, lanes: int = 64) -> None:
    times = {1: [], 2: []}
    for _ in range(repeats):
        for nproc in (1, 2):
            times[nproc].append(_train_iteration_seconds(nproc, 5, lanes))
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"PPO seconds per iteration, {lanes} lanes x 64 steps: 1 rank {one:.2f} s, 2 ranks {two:.2f} s "
          f"(ratio {one / two:.2f}x; rounds 1: {', '.join(f'{x:.2f}' for x in times[1])}; "
          f"2: {', '.join(f'{x:.2f}' for x in times[2])})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", default="ray,mrc,torchrun")
    ap.add_argument("--trace", default=os.path.join(ROOT, "..", "shared", "traces", "cloudPhysicsIO.txt"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"# {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} (a shared machine: noisy)")
    if "ray" in args.what:
        bench_ray(args.repeats)
    if "mrc" in args.what:
        bench_mrc(args.repeats, args.trace)
    if "evaluate" in args.what:
        bench_evaluate(args.repeats)
    if "torchrun" in args.what:
        bench_torchrun(args.repeats)


if __name__ == "__main__":
    main()
