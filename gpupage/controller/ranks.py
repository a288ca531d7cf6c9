"""The lanes of a training run and the collectives over them, as PPO and behaviour cloning see them.

A run has one global batch of lanes (its seeds, its minibatches, its random draws).  A rank owns
a block of the lanes, ``share(lanes)``, and everything global is either drawn identically on
every rank (the generator advances the same way everywhere) or combined by the collectives
below.  Here one process owns every lane and the collectives are identities, so a
single-process run computes exactly what it did before ranks existed;
:class:`gpupage.distributed.ddp.Ranks` implements them with torch.distributed under torchrun.
"""

from __future__ import annotations

import torch


class OneProcess:
    rank = 0
    world = 1

    def share(self, lanes: int) -> tuple[int, int]:
        """This rank's lanes ``lo..hi-1`` of the run's ``lanes``."""
        if lanes % self.world:
            raise ValueError(f"{lanes} lanes do not split evenly over {self.world} ranks")
        n = lanes // self.world
        return self.rank * n, (self.rank + 1) * n

    def gather_lanes(self, x: torch.Tensor) -> torch.Tensor:
        """``[steps, own lanes, ...]`` -> ``[steps, every lane, ...]``, ranks in order."""
        return x

    def all_done(self, done: torch.Tensor) -> bool:
        """Whether every lane of every rank is done (a host sync)."""
        return bool(done.all())

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        """Sum ``x`` over the ranks, in place."""
        return x

    def sum_grads(self, model: torch.nn.Module, stats: torch.Tensor) -> torch.Tensor:
        """Sum the gradients and ``stats`` (float64 [n]) over the ranks: the grads in place, the
        summed stats returned.  Each rank's loss is its samples' share of the minibatch mean, so
        the sum is the gradient of the whole minibatch."""
        return stats


__all__ = ["OneProcess"]
