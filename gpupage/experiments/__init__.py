"""The paper's experiments: every table, figure and bound the CLI writes.

Owns the library calls behind ``gpupage simulate`` and ``sweep`` (``calls``), parameter
grids (``sweep``), miss-ratio curves (``mrc``), the §6 reproduction (``reproduce``), closed-loop traces
(``closedloop``), multi-agent partitioning (``multiagent``) and every bound of the paper
(the ``bounds`` subpackage: one module per result, the search, the report and the plots
apart).

May import: ``gpupage.core``, ``gpupage.zoo``, ``gpupage.controller``.
"""
