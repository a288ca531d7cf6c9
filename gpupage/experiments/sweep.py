"""Grids of (policy, K, seed, beta, rho) cells over a trace family, streamed row by row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch

from ..core.policies import POLICIES, Policy, get_policy
from ..core.results import ResultsTable, recorded_options
from ..core.simulate import first_touches, resolve_warmup, simulate
from ..core.traces import ZipfParams, cyclic_traces, perturb, retrieval_noise, zipf_traces
from ..core import limits

SWEEP_COLUMNS = ("policy", "K", "seed", "beta", "rho", "T", "faults", "non_compulsory_faults", "fault_rate",
                 "competitive_ratio")
SWEEP_KEY = ("policy", "K", "seed", "beta", "rho")
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
    warmup: int | float = 0
    """Requests of each trace that fill the cache uncounted: a number, or a fraction of T in (0, 1)."""

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
        resolve_warmup(self.warmup, self.params.T)

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


def run_sweep(spec: SweepSpec, done=None) -> Iterator[list[dict]]:
    """Yield the rows (see ``SWEEP_COLUMNS``) of each (beta, rho, seed chunk, K) batch.

    ``done(row) -> bool`` marks finished cells: a batch whose cells are all done is not
    simulated, and its finished rows are not yielded.  Belady runs on every simulated trace
    for the ratio; a lane's numbers never depend on its batch, so resuming changes none.
    Faults and T count the requests after the warm-up; ``non_compulsory_faults`` leaves out
    those on a block's first request."""
    belady = get_policy("belady")
    # a lane holds its trace, a perturbed copy and simulate's scratch: long traces take fewer lanes a call
    step = limits.lanes_that_fit(16 * spec.params.T, LANES_PER_CALL)
    for beta in spec.betas:
        for rho in spec.rhos:
            for lo in range(0, len(spec.seeds), step):
                seeds = spec.seeds[lo:lo + step]
                shared = None
                for K in spec.Ks:
                    def cell(pol, s):
                        return dict(policy=pol.name, K=K, seed=s, beta=beta, rho=rho)

                    todo = [p for p in spec.policies if done is None or not all(done(cell(p, s)) for s in seeds)]
                    if not todo:
                        continue
                    if shared is None or spec.family == "cyclic":  # only the cyclic family depends on K
                        shared = make_traces(spec, seeds, beta, rho, K)
                    traces = shared
                    w = resolve_warmup(spec.warmup, traces.shape[1])
                    res = simulate(traces, belady, K, warmup=w)
                    opt, requests = res.faults.cpu(), res.requests.cpu()
                    compulsory = first_touches(traces, w).cpu()
                    for pol in todo:
                        faults = opt if pol is belady else simulate(traces, pol, K, seed=seeds, warmup=w,
                                                                    options=pol.own_options(spec.options)).faults.cpu()
                        rows = []
                        for i, s in enumerate(seeds):
                            f, n = int(faults[i]), int(requests[i])
                            rows.append(dict(cell(pol, s), T=n, faults=f, non_compulsory_faults=f - int(compulsory[i]),
                                             fault_rate=f / max(n, 1), competitive_ratio=f / max(int(opt[i]), 1)))
                        yield [r for r in rows if done is None or not done(r)]


def spec_record(spec: SweepSpec) -> dict:
    """Everything that determines a sweep's rows (the device does not: backends agree)."""
    return {"command": "sweep", "family": spec.family, "params": asdict(spec.params),
            "policies": [p.name for p in spec.policies], "K": list(spec.Ks), "seeds": _ranges(spec.seeds),
            "beta": list(spec.betas), "rho": list(spec.rhos), "options": recorded_options(spec.options), "warmup": spec.warmup}


def _ranges(xs: list[int]) -> list[list[int]]:
    """[1,2,3,7] -> [[1,3],[7,7]]: a seed list of any length in a few numbers."""
    if isinstance(xs, range) and xs.step == 1:  # the CLI's a-b: never expanded
        return [[xs.start, xs.stop - 1]] if xs else []
    out: list[list[int]] = []
    for x in xs:
        if out and x == out[-1][1] + 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    return out


def write_sweep(spec: SweepSpec, path: str, overwrite: bool = False, progress=None) -> tuple[int, int]:
    """Run ``spec`` into the resumable table ``path``: returns (rows written now, rows already there).

    An existing ``path`` of the same specification resumes (its finished cells are skipped);
    another specification is an error unless ``overwrite``.  Each batch is appended whole, so
    an interruption keeps every finished row and leaves no torn one."""
    # refused before the table exists: at least one lane at a time must fit (see run_sweep)
    limits.require(16 * spec.params.T, f"a sweep lane of {spec.params.T} requests")
    with ResultsTable(path, SWEEP_COLUMNS, SWEEP_KEY, spec_record(spec), overwrite) as table:
        if progress is not None:
            progress.update(table.resumed)
        n = 0
        for rows in run_sweep(spec, done=lambda row: table.cell(row) in table.done):
            table.append(rows)
            n += len(rows)
            if progress is not None:
                progress.update(len(rows))
        return n, table.resumed


__all__ = ["SweepSpec", "run_sweep", "write_sweep", "spec_record", "SWEEP_COLUMNS", "SWEEP_KEY", "FAMILIES", "POLICIES"]
