"""Triton kernels of gpupage (importable without a GPU; see the README).

One flat package beside the parts it serves: ``simulate`` and ``fused`` (the core's
policies and trace family), ``baselines``, ``heuristics`` and ``predictions`` (the zoo),
``env_step`` (the controller's environment), ``closedloop`` (the experiments), and the
shared ``launch`` and ``rng``.  A kernel reads ``gpupage.core``, ``gpupage.zoo`` and
``gpupage.controller.state`` only (``tests/test_layout.py``).

Every module lists the specialisations it can launch in ``AOT_SPECS`` for
``scripts/compile_kernels.py``."""
