"""Miss-ratio curves: every policy at many cache sizes of one trace (behind ``gpupage mrc``).

A stack algorithm (LRU, LFU, Belady) gives its whole curve in one pass
(:mod:`gpupage.core.stack`, :mod:`gpupage.core.curves`); every other registry policy runs its
sizes as lanes of one batch, ``simulate(trace.expand(nK, T), policy, K=tensor)``.  Both count
faults from the warm-up's end and are exact; a SHARDS sample (:mod:`gpupage.core.shards`)
replaces the trace by its sample and each K by ``round(K * rate)``.

As a grid (``gpupage mrc --out``, :data:`gpupage.distributed.shard.MRC`) its cells are (policy, K):
:func:`run_mrc` computes any subset of them, each number the same whatever the subset.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..core.curves import ONE_PASS, fault_curve
from ..core.limits import configure_threads
from ..core.policies import Policy, check_options, get_policy
from ..core.results import atomic_path, file_identity, recorded_options
from ..core.shards import check_rate, sample_mask, scaled_k
from ..core.simulate import first_touches, resolve_warmup, simulate

AUTO_SIZES = 64
COLUMNS = ("policy", "K", "requests", "faults", "non_compulsory_faults", "miss_ratio")
KEY = ("policy", "K")
LANES_PER_CHUNK = AUTO_SIZES  # sizes of one policy a chunk simulates at once: --K auto is one batch, as one call


def auto_sizes(distinct: int, n: int = AUTO_SIZES) -> list[int]:
    """``n`` cache sizes log-spaced from 1 to ``distinct``: each rounded to the nearest integer and,
    where that repeats the previous size, raised to one more, so the sizes are distinct and
    ascending (1, 2, 3, ... at the small end) and the last is ``distinct``; ``min(n, distinct)`` sizes."""
    if distinct < 2:
        raise ValueError(f"--K auto needs a trace of at least 2 distinct blocks, this one has {distinct}; give --K")
    sizes: list[int] = []
    for i in range(n):
        k = max(int(round(distinct ** (i / (n - 1)))), sizes[-1] + 1 if sizes else 1)
        if k > distinct:
            break
        sizes.append(k)
    return sizes


def resolve_sizes(ids, Ks) -> list[int]:
    """The sorted distinct sizes ``Ks``, or ``"auto"``: :func:`auto_sizes` of the trace's distinct blocks."""
    if isinstance(Ks, str) and Ks == "auto":
        lane = ids if isinstance(ids, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        sizes = auto_sizes(int(first_touches(lane)[0]))
    else:
        sizes = sorted({int(k) for k in Ks})
    if not sizes or min(sizes) < 1:
        raise ValueError(f"K must be >= 1, got {min(sizes) if sizes else 'none'}")
    return sizes


def miss_ratio_curves(ids, policies, Ks, warmup=0, sample_rate: float = 1.0, seed: int = 0,
                      one_pass: bool = True, original=None, progress=None, options: dict | None = None) -> list[dict]:
    """One row (``COLUMNS``) per (policy, K) of the trace ``ids``.

    Args:
        ids: block ids ``[T]`` (ints >= 0, no pads), e.g. ``read_trace(path).ids``.
        policies: registry names or :class:`Policy` objects.
        Ks: cache sizes, or ``"auto"`` (:func:`auto_sizes` of the trace's distinct blocks).
        warmup: requests that fill the caches uncounted: an int, or a fraction of the trace in (0, 1).
        sample_rate: SHARDS rate in (0, 1]; below 1 every count is the sample's, simulated at
            ``round(K * rate)`` blocks, and ``miss_ratio`` estimates the full trace's as the sample's
            faults over the requests a sample at this rate holds on average (``rate`` times the
            trace's), which is SHARDS_adj: a hot block in or out of the sample moves the sample's
            size far more than its faults.
        seed: the Random policy's seed and the sample's hash seed.
        one_pass: use a stack algorithm's one-pass curve where there is one (else lanes for all).
        original: the ids the sample hashes (default ``ids``), e.g. a file's own ids.
        progress: anything with ``update(n)``, advanced once per policy.
        options: policy options, each policy given the keys it reads (``learned``: ``checkpoint``, ``candidates``).
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    pols = [p if isinstance(p, Policy) else get_policy(p) for p in policies]
    if not pols:
        raise ValueError("no policy given")
    check_options(pols, options)
    w = resolve_warmup(warmup, ids.shape[0])
    rate = check_rate(sample_rate)
    expected = rate * (ids.shape[0] - w)  # counted requests of an average sample
    lane = torch.from_numpy(ids.astype(np.int32) if ids.size and 0 <= ids.min() and ids.max() < 2**31 else ids)
    sizes = resolve_sizes(lane, Ks)
    if rate < 1:
        keep, w = _sample(ids if original is None else original, w, rate, seed)
        lane = lane[torch.from_numpy(keep)]
    sim_k = [scaled_k(k, rate) for k in sizes]
    compulsory = int(first_touches(lane, w)[0])
    requests = lane.shape[0] - w
    distinct_k = sorted(set(sim_k))
    rows = []
    for pol in pols:
        if one_pass and pol.name in ONE_PASS:
            cap = lane.shape[0]  # a cache beyond the trace's length holds all of it, as one of that length
            curve = fault_curve(lane, pol.name, min(max(distinct_k), cap), warmup=w)[0]
            faults = {k: int(curve[min(k, cap) - 1]) for k in distinct_k}
        else:
            batch = lane.unsqueeze(0).expand(len(distinct_k), -1)
            res = simulate(batch, pol, torch.tensor(distinct_k), seed=[seed] * len(distinct_k), warmup=w,
                           options=pol.own_options(options))
            faults = dict(zip(distinct_k, res.faults.tolist()))
        for k, ks in zip(sizes, sim_k):
            f = faults[ks]
            rows.append(dict(policy=pol.name, K=k, requests=requests, faults=f, non_compulsory_faults=f - compulsory,
                             miss_ratio=f / requests if rate == 1 else min(f / expected, 1.0)))
        if progress is not None:
            progress.update(1)
    return rows


@dataclass
class MrcSpec:
    """The (policy, K) grid of one trace: what a chunk of cells needs, sent whole to a Ray worker
    (the trace travels with it, so workers need no shared file system)."""

    ids: np.ndarray
    """The trace's dense block ids [T]."""
    policies: list[str]
    Ks: list[int]
    """Sizes, ascending and distinct (``"auto"`` resolved by :func:`mrc_spec`)."""
    warmup: int = 0
    """Requests, resolved."""
    sample_rate: float = 1.0
    seed: int = 0
    original: np.ndarray | None = None
    """The ids the SHARDS sample hashes, per request (None: ``ids``)."""
    source: dict = field(default_factory=dict)
    """The file's identity and how it was read (:func:`mrc_record`)."""
    device: str = "cpu"
    """Only the CPU: the Ray runner sets it; curves are computed on the CPU."""
    options: dict | None = None
    """Policy options (``learned``: its ``checkpoint`` path, which the Ray runner reads into the network
    it sends, and ``candidates``)."""


def mrc_spec(path, policies, Ks, warmup=0, sample_rate: float = 1.0, seed: int = 0, fmt: str = "auto",
             column="0", options: dict | None = None) -> MrcSpec:
    """The grid of the trace file ``path`` (read here; arguments as :func:`miss_ratio_curves`)."""
    from ..core.io import read_trace

    check_rate(sample_rate)
    pols = [p if isinstance(p, Policy) else get_policy(p) for p in policies]
    check_options(pols, options)
    if any(p.needs_checkpoint for p in pols):  # learned's: a missing or bad checkpoint is refused before any file
        from ..zoo.learned import policy_options

        policy_options(get_policy("learned").own_options(options))
    trace = read_trace(path, fmt, column)
    w = resolve_warmup(warmup, trace.requests)
    original = trace.original[trace.ids] if sample_rate < 1 else None
    if original is not None:
        _sample(original, w, sample_rate, seed)  # refused before any file is written
    source = {"trace": file_identity(path), "format": trace.format, "column": str(column),
              "requests": trace.requests, "distinct": trace.distinct}
    return MrcSpec(trace.ids, [p.name for p in pols], resolve_sizes(trace.ids, Ks), w, sample_rate, seed,
                   original, source, options=options or None)


def mrc_record(spec: MrcSpec) -> dict:
    """Everything that determines the rows: the sidecar of ``mrc.csv`` (the device does not)."""
    return {"command": "mrc", **spec.source, "warmup": spec.warmup, "sample_rate": spec.sample_rate,
            "seed": spec.seed, "policies": list(spec.policies), "K": list(spec.Ks),
            **({"options": recorded_options(spec.options)} if spec.options else {})}


def run_mrc(spec: MrcSpec, done=None) -> Iterator[list[dict]]:
    """The rows (``COLUMNS``, miss ratio as written) of each policy's sizes not ``done(row)``: a batch per
    policy with a one-pass curve, else a batch per numba thread's worth of sizes, so that an interrupt (handled
    between batches: a numba call cannot be stopped) ends the run within one batch's time, not one curve's.
    A size's numbers never depend on the others computed with it, so chunks change none."""
    threads = configure_threads()
    for name in spec.policies:
        Ks = [k for k in spec.Ks if done is None or not done({"policy": name, "K": k})]
        pol = get_policy(name)
        step = len(Ks) if name in ONE_PASS else threads
        for lo in range(0, len(Ks), max(step, 1)):
            rows = miss_ratio_curves(spec.ids, [pol], Ks[lo:lo + step], spec.warmup, spec.sample_rate, spec.seed,
                                     original=spec.original, options=pol.own_options(spec.options))
            yield [dict(r, miss_ratio=f"{r['miss_ratio']:.6f}") for r in rows]


def mrc_chunk(spec: MrcSpec, policy: str, lo: int, hi: int) -> MrcSpec:
    """The spec of one chunk: one policy, sizes lo..hi-1."""
    return replace(spec, policies=[policy], Ks=spec.Ks[lo:hi])


def finish_curves(spec: MrcSpec, out_dir, title: str = "") -> tuple[list[dict], Path]:
    """The complete ``mrc.csv`` of ``out_dir`` (policies in ``spec``'s order, smallest K first) and
    ``mrc.png``, drawn from it unless a plot newer than the table is already there."""
    out = Path(out_dir)
    csv_path, png_path = out / "mrc.csv", out / "mrc.png"
    order = {p: i for i, p in enumerate(spec.policies)}
    with open(csv_path, newline="") as f:
        rows = [dict(r, K=int(r["K"]), miss_ratio=float(r["miss_ratio"])) for r in csv.DictReader(f)]
    rows.sort(key=lambda r: (order[r["policy"]], r["K"]))
    if not png_path.exists() or png_path.stat().st_mtime < csv_path.stat().st_mtime:
        _plot(rows, png_path, title)
    return rows, png_path


def _sample(original, w: int, rate: float, seed: int):
    """The SHARDS sample's mask and its warm-up; one that counts nothing is a one-line ValueError."""
    keep = sample_mask(original, rate, seed)
    kept, w = int(keep.sum()), int(keep[:w].sum())
    if kept <= w:
        raise ValueError(f"a sample at rate {rate} keeps {kept} requests, {w} of them in the warm-up: "
                         "nothing to count; raise --sample-rate")
    return keep, w


def check_out_dir(out_dir) -> Path:
    """``out_dir`` as a Path; one that exists and is not a directory is a one-line OSError."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a directory")
    return out


def _plot(rows: list[dict], path: Path, title: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: a figure of its own, drawn by Agg, loads faster

    fig = Figure(figsize=(7.5, 4.6))
    ax = fig.subplots()
    for name in dict.fromkeys(r["policy"] for r in rows):
        sel = [r for r in rows if r["policy"] == name]
        style = dict(color="black", linestyle="--", linewidth=1.6) if name == "belady" else dict(linewidth=1.3)
        ax.plot([r["K"] for r in sel], [r["miss_ratio"] for r in sel], label=name, **style)
    ax.set_xscale("log")
    ax.set_xlabel("cache size K (blocks)")
    ax.set_ylabel("miss ratio")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)


def describe(path: str, requests: int, distinct: int, warmup: int, sample_rate: float) -> str:
    """The plot's title: the trace, its size, and how it was counted."""
    text = f"{os.path.basename(path)}: {requests:,} requests, {distinct:,} blocks"
    if warmup:
        text += f", warm-up {warmup:,}"
    if sample_rate < 1:
        text += f", SHARDS sample at rate {sample_rate:g}"
    return text


__all__ = ["AUTO_SIZES", "COLUMNS", "KEY", "LANES_PER_CHUNK", "MrcSpec", "auto_sizes", "resolve_sizes",
           "miss_ratio_curves", "file_identity", "mrc_spec", "mrc_record", "run_mrc", "mrc_chunk", "finish_curves",
           "check_out_dir", "describe"]
