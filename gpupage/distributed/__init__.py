"""Running beyond one process: grids cut into chunks of lanes, on Ray or any scheduler, and PPO on torchrun.

Owns the chunking of sweep-like grids (``sweep``, ``mrc``), shards (``--shard I/N``) and ``merge`` of their outputs
(``shard``), the Ray runner that streams chunks into the same resumable output as a local run
(``ray_runner``), and data-parallel training under torchrun (``ddp``).  Ray is optional: it is
imported inside the runner only.

May import: ``gpupage.core``, ``gpupage.zoo``, ``gpupage.controller``, ``gpupage.experiments``.
"""
