"""The policy zoo: eviction policies beyond the core's per-slot scores, each a registry entry.

Owns the learning-augmented baselines ``blind_oracle`` and ``predictive_marker``
(``baselines``) and the predictions they read (``predictions``: the eta noise model),
``arc`` (``arc``) and ``clock`` (``clock``), and the change-detecting ``adaptive``
heuristic (``heuristics``), the queue-based ``s3fifo``, ``sieve``, ``wtinylfu`` and ``lirs`` (``modern``),
``adaptive`` under prefetching (``prefetching``, reference ``prefetch_reference``), and the integer Page
Controller ``learned`` (``learned``; reference ``learned_reference``; its DAgger collection for the trainer,
``learned_dagger``).  Each policy module holds a numba CPU implementation with the
contract of :func:`gpupage.core.cpu.simulate_cpu` and a plain-Python ``naive_*`` reference;
the Triton twins live in ``kernels``.

May import: ``gpupage.core``.
"""
