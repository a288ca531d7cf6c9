"""Library calls behind the CLI's simulate and sweep commands."""

from __future__ import annotations

import torch

from .io import read_trace
from .policies import get_policy
from .simulate import simulate
from .stack import lru_fault_curve
from .sweep import SweepSpec, write_sweep
from .traces import ZipfParams


def simulate_file(path: str, policies: list[str], Ks: list[int], fmt: str = "txt", column="0", seed: int = 0,
                  device: str = "cpu") -> list[dict]:
    """One row per (policy, K) for a real trace; all K of a policy run as lanes of one batch."""
    pols = [get_policy(p) for p in policies]
    for K in Ks:
        if K < 1:
            raise ValueError(f"K must be >= 1, got {K}")
    trace = read_trace(path, fmt, column)
    ids = torch.from_numpy(trace.ids).to(device)
    lanes = ids.unsqueeze(0).expand(len(Ks), -1)
    # a K beyond the trace acts as its length (and may not even fit int64)
    Kt = torch.tensor([min(K, max(ids.numel(), 1)) for K in Ks], dtype=torch.int64, device=device)
    rows = []
    for pol in pols:
        if pol.name == "lru" and device == "cpu":  # every K from one stack-distance pass
            faults = lru_fault_curve(ids, int(Kt.max()))[0, Kt.cpu() - 1]
        else:
            faults = simulate(lanes, pol, Kt, seed=[seed] * len(Ks)).faults.cpu()
        for i, K in enumerate(Ks):
            f = int(faults[i])
            rows.append(dict(policy=pol.name, K=K, requests=trace.requests, distinct=trace.distinct,
                             compulsory_faults=trace.distinct, faults=f, fault_rate=f / trace.requests,
                             non_compulsory_faults=f - trace.distinct))
    return rows


def sweep_to_csv(out: str, policies: list[str], Ks: list[int], seeds: list[int], betas: list[float],
                 rhos: list[float], zipf: dict, family: str = "zipf", device: str = "cpu", eta: float | None = None,
                 overwrite: bool = False, progress=None) -> tuple[int, int]:
    """Run the grid into the resumable table ``out``; returns (rows written now, rows already there)."""
    spec = SweepSpec([get_policy(p) for p in policies], Ks, seeds, betas, rhos, ZipfParams(**zipf), family, device,
                     None if eta is None else {"eta": eta})
    bar = progress(spec.cells) if progress else None
    try:
        return write_sweep(spec, out, overwrite, bar)
    finally:
        if bar is not None:
            bar.close()
