"""The simulator core: what a cache, a trace and a policy are, and how a batch of them runs.

Owns the counter-based RNG (``rng``), the trace families (``traces``) and trace files
(``io``), the policy contract and the ``POLICIES`` registry (``policies``), the numba CPU
backend (``cpu``), the plain-Python reference (``reference``), the one entry point
``simulate`` (``simulate``), LRU at every K by stack distances (``stack``), Belady and LFU at
every K in one pass (``curves``) and SHARDS spatial sampling (``shards``).

May import: nothing else of gpupage (the bottom layer).  The registry names its policies'
implementations in ``gpupage.zoo`` and ``kernels`` as ``"module:function"`` strings,
imported on first use.  Importing this package loads nothing heavy; ``policies`` is
stdlib only (the CLI reads it at ``--help`` time).
"""
