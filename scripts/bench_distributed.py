"""What scaling out costs and gains on this machine: Ray's overhead per chunk, a sweep on 1 and 2 Ray
workers, and seconds per PPO iteration on 1 and 2 torchrun ranks.

* Ray overhead: a sweep of many tiny chunks run through Ray (one single-threaded worker) and in
  this process, alternately; (Ray - local) / chunks.
* Scaling: a sweep of equal chunks on a Ray instance of 1 CPU and of 2 CPUs (single-threaded
  tasks), alternately; the ratio of their times.
* torchrun: ``gpupage train`` PPO only, the same global batch on 1 and 2 gloo ranks (``--nproc``),
  alternately; the median of each run's iteration times after the first.

Wall-clock on a shared machine is noisy: every figure is the median over ``--repeats`` rounds
that alternate the two sides.

    python scripts/bench_distributed.py [--what ray,torchrun] [--repeats 3]
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
from gpupage.distributed.shard import SWEEP, write_grid  # noqa: E402
from gpupage.experiments.sweep import SweepSpec  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _spec(seeds: int, T: int, policies=("lru",)) -> SweepSpec:
    return SweepSpec([get_policy(p) for p in policies], [8], list(range(seeds)), params=ZipfParams(T=T))


def _sweep_seconds(spec, lanes: int, runner=None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ran = write_grid(SWEEP, spec, os.path.join(tmp, "s.csv"), lanes=lanes, runner=runner)
        seconds = time.perf_counter() - t0
    assert ran.chunks_run == ran.chunks_total
    return seconds


def _ray(cpus: int):
    import ray

    from gpupage.distributed.ray_runner import RayRunner

    ray.shutdown()
    ray.init(num_cpus=cpus, log_to_driver=False)
    return RayRunner("sweep", device="cpu", task_cpus=1)


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
    ap.add_argument("--what", default="ray,torchrun")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"# {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} (a shared machine: noisy)")
    if "ray" in args.what:
        bench_ray(args.repeats)
    if "torchrun" in args.what:
        bench_torchrun(args.repeats)


if __name__ == "__main__":
    main()
