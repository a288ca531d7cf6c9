"""The learned Page Controller: its environment, features, network, training and evaluation.

Owns the env's integer state layout and constants (``state``), the batched gymnax-style
environment (``env``), the float features (``features``), the permutation-equivariant
network and its checkpoints (``network``), behaviour cloning with DAgger (``imitation``),
PPO (``ppo``), evaluation against the registry and Prop. 6 (``evaluate``), and the
told-phase rules that bound what a black-box controller can learn (``observability``),
LHD's hit-density ranking estimated on a trace (``hit_density``),
and gymnasium adapters over the env (``gym``: gymnasium is an optional extra, imported there only).

May import: ``gpupage.core``, ``gpupage.zoo``.  ``state`` imports nothing of gpupage, so
``env``, ``features`` and ``kernels.env_step`` all read it without a loop.
"""
