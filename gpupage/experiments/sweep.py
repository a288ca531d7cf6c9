"""Grids of (policy, K, seed, beta, rho) cells over a trace family, streamed row by row."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..core.policies import POLICIES, Policy, get_policy
from ..core.simulate import simulate
from ..core.traces import ZipfParams, cyclic_traces, perturb, retrieval_noise, zipf_traces

SWEEP_COLUMNS = ("policy", "K", "seed", "beta", "rho", "T", "faults", "fault_rate", "competitive_ratio")
FAMILIES = ("zipf", "cyclic")
LANES_PER_CALL = 1 << 14  # bounds memory: a call holds at most this many [T] traces


@dataclass
class SweepSpec:
    policies: list[Policy]
    Ks: list[int]
    seeds: list[int]
    betas: list[float] = field(default_factory=lambda: [0.0])
    rhos: list[float] = field(default_factory=lambda: [1.0])
    params: ZipfParams = field(default_factory=ZipfParams)
    family: str = "zipf"
    device: str = "cpu"
    options: dict | None = None
    """Policy options (e.g. ``{"eta": 0.5}`` for prediction-based policies)."""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown trace family {self.family!r}; choose from {', '.join(FAMILIES)}")
        if not self.seeds:
            raise ValueError("no seeds given")
        for K in self.Ks:
            if K < 1:
                raise ValueError(f"K must be >= 1, got {K}")
        for b in self.betas:
            if not 0 <= b <= 1:
                raise ValueError(f"beta must be in [0, 1], got {b}")
        for r in self.rhos:
            if not 0 <= r <= 1:
                raise ValueError(f"rho must be in [0, 1], got {r}")

    @property
    def cells(self) -> int:
        return len(self.betas) * len(self.rhos) * len(self.Ks) * len(self.seeds) * len(self.policies)


def make_traces(spec: SweepSpec, seeds: list[int], beta: float, rho: float, K: int) -> torch.Tensor:
    """The family's traces for these seeds, perturbed (beta) then noised (rho); on spec.device.

    Only the cyclic family depends on K (K+1 blocks)."""
    p = spec.params
    if spec.family == "cyclic":
        base = cyclic_traces(K, p.T, len(seeds))
        M = K + 1
    else:
        base = zipf_traces(p, seeds)
        M = p.M
    if beta > 0:
        base = perturb(base, beta, M, seeds)
    if rho < 1:
        base = retrieval_noise(base, rho, M, seeds)
    return base.to(spec.device)


def run_sweep(spec: SweepSpec) -> Iterator[dict]:
    """Yield one row per cell (see ``SWEEP_COLUMNS``); Belady runs on every trace for the ratio."""
    belady = get_policy("belady")
    for beta in spec.betas:
        for rho in spec.rhos:
            for lo in range(0, len(spec.seeds), LANES_PER_CALL):
                seeds = spec.seeds[lo:lo + LANES_PER_CALL]
                shared = None if spec.family == "cyclic" else make_traces(spec, seeds, beta, rho, 0)
                for K in spec.Ks:
                    traces = make_traces(spec, seeds, beta, rho, K) if shared is None else shared
                    opt = simulate(traces, belady, K).faults.cpu()
                    requests = (traces >= 0).sum(1).cpu()
                    for pol in spec.policies:
                        faults = opt if pol is belady else simulate(traces, pol, K, seed=seeds, options=spec.options).faults.cpu()
                        for i, s in enumerate(seeds):
                            f = int(faults[i])
                            yield dict(policy=pol.name, K=K, seed=s, beta=beta, rho=rho, T=int(requests[i]), faults=f,
                                       fault_rate=f / max(int(requests[i]), 1),
                                       competitive_ratio=f / max(int(opt[i]), 1))


def write_rows(rows: Iterator[dict], path: str, progress=None) -> int:
    """Stream rows to CSV; an interrupt closes (so flushes) the file, keeping every finished row."""
    n = 0
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SWEEP_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
            n += 1
            if n % 1024 == 0:
                f.flush()
            if progress is not None:
                progress.update(1)
    return n


__all__ = ["SweepSpec", "run_sweep", "write_rows", "SWEEP_COLUMNS", "FAMILIES", "POLICIES"]
