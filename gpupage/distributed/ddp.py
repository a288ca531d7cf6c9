"""Data-parallel training under torchrun: each rank owns a block of the lanes on its own device.

``torchrun --nproc_per_node N -m gpupage train ...`` (or ``gpupage train --nproc N``, which runs
that) starts N ranks; :func:`join` puts each in the process group (NCCL on GPUs, gloo on the
CPU) and on its device.  PPO and behaviour cloning take the :class:`Ranks` and keep the
single-process run's global batch: its seeds, random draws and minibatches (see
:mod:`gpupage.controller.ranks`).

Gradients are summed by one flat all-reduce per minibatch rather than by
``DistributedDataParallel``: the controller is ~20k parameters (DDP's single bucket anyway), the
critic warm-up leaves the policy's parameters without gradients (DDP would need
``find_unused_parameters``), and the minibatch's loss statistics (its KL, for the early stop
every rank must take alike) ride in the same all-reduce.
"""

from __future__ import annotations

import os
import signal

import torch
import torch.distributed as dist

from ..controller.ranks import OneProcess


def under_torchrun() -> bool:
    """Whether this process is one of several torchrun ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


class Ranks(OneProcess):
    """The collectives of :class:`~gpupage.controller.ranks.OneProcess` over torch.distributed."""

    def __init__(self):
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()

    def gather_lanes(self, x: torch.Tensor) -> torch.Tensor:
        wire = x.to(torch.uint8) if x.dtype == torch.bool else x.contiguous()  # not every backend sends bool
        parts = [torch.empty_like(wire) for _ in range(self.world)]
        dist.all_gather(parts, wire)
        return torch.cat(parts, 1).to(x.dtype)

    def all_done(self, done: torch.Tensor) -> bool:
        flag = done.all().to(torch.int32).reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag)

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x)
        return x

    def sum_grads(self, model: torch.nn.Module, stats: torch.Tensor) -> torch.Tensor:
        # every rank's loss has the same graph (an empty share too), so the same parameters have grads
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads] + [stats.to(grads[0].dtype)])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        return flat[offset:].to(stats.dtype)


def join(device: str) -> tuple[Ranks, str]:
    """Join torchrun's process group; returns (ranks, this rank's device).

    ``device`` is 'cpu' or 'cuda' (resolved): on CUDA rank r of a node takes its GPU r and NCCL, on
    the CPU gloo, and each rank's numba threads are the node's cores over its ranks."""
    local, per_node = int(os.environ["LOCAL_RANK"]), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.startswith("cuda"):
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"rank {local} of this node has no GPU ({torch.cuda.device_count()} visible): "
                               "start at most one rank per GPU")
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        import numba

        numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // per_node)))
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Ranks(), device


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, args: list[str], again: str) -> None:
    """Run ``gpupage ARGS`` as ``nproc`` torchrun ranks on this machine (torchrun's agent runs here, so
    a failed rank is a one-line RuntimeError naming it and saying how to go on, ``again``)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "gpupage", *args]))
    except ChildFailedError as e:
        rank, failure = min(e.failures.items(), key=lambda kv: kv[1].timestamp)  # the first to fail
        how = (f"was killed by {signal.Signals(-failure.exitcode).name}" if failure.exitcode < 0
               else f"exited with status {failure.exitcode}")
        raise RuntimeError(f"training on {nproc} ranks failed: rank {rank} {how}; {again}") from None
    except SignalException as e:
        raise RuntimeError(f"training on {nproc} ranks stopped by {e.sigval.name}; {again}") from None


def without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


__all__ = ["Ranks", "under_torchrun", "join", "leave", "launch", "without_option"]
