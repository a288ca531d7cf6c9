"""A grid's chunks as Ray tasks, streamed into the same resumable output as a local run.

Ray schedules, places and retries: a chunk is one task asking for one GPU (or ``task_cpus``
CPUs), and a worker that dies mid-task is retried by Ray (``retries`` times).  The driver
keeps a bounded window of tasks in flight and appends each chunk's rows as it finishes, so a
driver killed mid-run resumes from its finished chunks (see :func:`~.shard.write_grid`).
"""

from __future__ import annotations

import os
from dataclasses import replace

from .shard import GRIDS, Chunk

INSTALL = "pip install 'gpupage[distributed]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def _run_chunk(command: str, spec, chunk: Chunk, threads: int) -> list[dict]:
    """The Ray task: every row of one chunk, computed with the task's CPUs as numba and torch threads."""
    import numba
    import torch

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    grid = GRIDS[command]
    return [row for rows in grid.run(grid.subspec(spec, chunk), None) for row in rows]


def _loaded(options: dict | None) -> dict | None:
    """``options`` with a ``learned`` checkpoint file read into its network, so that no worker reads the
    file: workers need no shared file system.  The driver read and recorded it already."""
    ck = (options or {}).get("checkpoint")
    if not isinstance(ck, (str, os.PathLike)):
        return options
    from ..zoo.learned import load_network

    return {**options, "checkpoint": load_network(ck)}


class RayRunner:
    """``runner(spec, chunks)`` for :func:`~.shard.write_grid`: yields each chunk's rows as its task ends.

    Args:
        command: the grid (``"sweep"``).
        address: ``"local"`` starts a Ray instance on this machine, stopped at the end; anything else
            joins that running cluster (``ray.init(address=...)``: ``"auto"``, ``"HEAD_IP:6379"``).
            A process already connected to Ray (``ray.init`` called before) uses that connection.
        device: ``"auto"`` (GPU tasks when the cluster has GPUs), ``"cpu"`` or ``"cuda"``.
        task_cpus: CPUs a CPU task asks for, and its numba and torch threads.
        retries: Ray's retries of a task whose worker died (an exception in the task is not retried).
    """

    def __init__(self, command: str, address: str = "local", device: str = "auto", task_cpus: int = 1,
                 retries: int = 3):
        if task_cpus < 1:
            raise ValueError(f"CPUs per Ray task must be >= 1, got {task_cpus}")
        self.command, self.address, self.device, self.task_cpus, self.retries = command, address, device, task_cpus, retries
        import_ray()  # fail before any file is opened

    def __call__(self, spec, chunks):
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, log_to_driver=False)
        try:
            resources = ray.cluster_resources()
            gpus = resources.get("GPU", 0)
            if self.device == "cuda" and not gpus:
                raise RuntimeError("--device cuda: the Ray cluster has no GPUs")
            on_gpu = self.device == "cuda" or (self.device == "auto" and gpus > 0)
            # a task sees its own GPU as cuda:0; the checkpoint travels in the spec, as the trace does
            spec = replace(spec, device="cuda" if on_gpu else "cpu", options=_loaded(spec.options))
            task = ray.remote(_run_chunk).options(num_cpus=self.task_cpus, num_gpus=1 if on_gpu else 0,
                                                  max_retries=self.retries, retry_exceptions=False)
            slots = int(gpus if on_gpu else resources.get("CPU", 1) // self.task_cpus) or 1
            spec_ref = ray.put(spec)
            todo = iter(chunks)
            running: dict = {}

            def submit():
                for chunk in todo:
                    running[task.remote(self.command, spec_ref, chunk, self.task_cpus)] = chunk
                    return

            for _ in range(2 * slots):  # two per slot: a slot never waits on the driver
                submit()
            while running:
                (ref,), _ = ray.wait(list(running), num_returns=1)
                chunk = running.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    msg = (str(cause).strip().splitlines() or [""])[0]
                    raise RuntimeError(f"chunk {chunk.group} lanes {chunk.lo}-{chunk.hi - 1} failed on Ray: "
                                       f"{type(cause).__name__}: {msg}") from None
                except ray.exceptions.RayError as e:
                    raise RuntimeError(f"chunk {chunk.group} lanes {chunk.lo}-{chunk.hi - 1} was lost on Ray "
                                       f"({type(e).__name__}, after {self.retries} retries); finished chunks were kept") from None
                submit()
                yield rows
        finally:
            if started:
                ray.shutdown()


__all__ = ["RayRunner", "INSTALL", "import_ray"]
