"""Library calls behind the CLI's simulate and sweep commands."""

from __future__ import annotations

import torch

from ..core.curves import ONE_PASS, fault_curve
from ..core.io import read_trace
from ..core.policies import check_options, get_policy
from ..core.simulate import first_touches, resolve_warmup, simulate
from ..core.traces import ZipfParams
from .sweep import SweepSpec, write_sweep


def learned_options(checkpoint=None, candidates=None) -> dict:
    """The policy options that ``--checkpoint`` and ``--candidates`` give (``learned``'s), the ones given only."""
    return {k: v for k, v in (("checkpoint", checkpoint), ("candidates", candidates)) if v is not None}


def simulate_file(path: str, policies: list[str], Ks: list[int], fmt: str = "auto", column="0", seed: int = 0,
                  device: str = "cpu", warmup=0, checkpoint: str | None = None,
                  candidates: int | None = None) -> list[dict]:
    """One row per (policy, K) for a real trace; all K of a policy run as lanes of one batch (or one
    stack-distance pass on the CPU for LRU, LFU and Belady).  Requests and faults count from request
    ``warmup`` on (an int, or a fraction of the trace in (0, 1)); compulsory faults are those on a
    block's first request.  Rows name the format the file was read as (``auto`` resolved).

    ``checkpoint``, ``candidates``: options of the policies that need a checkpoint (``learned``)."""
    pols = [get_policy(p) for p in policies]
    options = learned_options(checkpoint, candidates)
    check_options(pols, options)  # a --checkpoint no policy reads is refused, not ignored
    for K in Ks:
        if K < 1:
            raise ValueError(f"K must be >= 1, got {K}")
    trace = read_trace(path, fmt, column)
    w = resolve_warmup(warmup, trace.requests)
    ids = torch.from_numpy(trace.ids).to(device)
    lanes = ids.unsqueeze(0).expand(len(Ks), -1)
    # a K beyond the trace acts as its length (and may not even fit int64)
    Kt = torch.tensor([min(K, max(trace.requests, 1)) for K in Ks], dtype=torch.int64, device=device)
    requests = trace.requests - w
    compulsory = int(first_touches(ids, w)[0])
    rows = []
    for pol in pols:
        if pol.name in ONE_PASS and device == "cpu":  # every K from one pass (K beyond T acts as T)
            faults = fault_curve(ids, pol.name, int(Kt.max()), w)[0, Kt.cpu() - 1]
        else:
            faults = simulate(lanes, pol, Kt, seed=[seed] * len(Ks), options=pol.own_options(options),
                              warmup=w).faults.cpu()
        for i, K in enumerate(Ks):
            f = int(faults[i])
            rows.append(dict(policy=pol.name, K=K, format=trace.format, requests=requests, distinct=trace.distinct,
                             warmup=w, compulsory_faults=compulsory, faults=f, fault_rate=f / requests,
                             non_compulsory_faults=f - compulsory))
    return rows


def sweep_to_csv(out: str, policies: list[str], Ks: list[int], seeds: list[int], betas: list[float],
                 rhos: list[float], zipf: dict, family: str = "zipf", device: str = "cpu", eta: float | None = None,
                 overwrite: bool = False, progress=None, warmup=0, checkpoint: str | None = None,
                 candidates: int | None = None, writer=None):
    """Run the grid into the resumable table ``out``; returns (rows written now, rows already there).

    ``checkpoint``, ``candidates``: options of the policies that need a checkpoint (``learned``).
    ``writer(spec, out, overwrite, bar)`` replaces :func:`write_sweep` (a shard, a Ray run) and
    its result is returned."""
    options = {**({} if eta is None else {"eta": eta}), **learned_options(checkpoint, candidates)}
    check_options([get_policy(p) for p in policies], options)
    spec = SweepSpec([get_policy(p) for p in policies], Ks, seeds, betas, rhos, ZipfParams(**zipf), family, device,
                     options or None, warmup)
    bar = progress(spec.cells) if progress else None
    try:
        return (writer or write_sweep)(spec, out, overwrite, bar)
    finally:
        if bar is not None:
            bar.close()
