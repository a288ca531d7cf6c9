"""Sweep-like grids as chunks of lanes: the unit of a Ray task, of a shard's slice and of a merge's check.

A grid's cells are the product of its key columns' values.  One axis holds lanes (a sweep's
seeds); a *chunk* is one value of every group axis (a sweep's beta, rho and K), every value of
the others (its policies) and a block of at most ``lanes`` lanes: one Triton launch or one CPU
batch.  Seeds are per lane, so how a grid is chunked never changes a number.  An mrc grid's group
is a policy and its lanes are sizes; a stack algorithm's sizes are never cut (one pass gives them all).

Chunks, shards and cells are computed from a run's spec record (what its sidecar holds), so
``merge`` recomputes every shard's slice from the files alone.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core.curves import ONE_PASS
from ..core.policies import get_policy
from ..core.results import ResultsTable, _text, atomic_path, check_target, spec_diff, spec_path, write_text_atomic
from ..experiments import mrc
from ..experiments.sweep import LANES_PER_CALL, SWEEP_COLUMNS, SWEEP_KEY, run_sweep, spec_record

try:  # advisory locks are POSIX; elsewhere a shard still being written is not detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


@dataclass(frozen=True)
class Chunk:
    group: tuple
    """One value of each group axis."""
    lo: int
    hi: int
    """The block of the lane axis: positions lo..hi-1 of its values."""


@dataclass(frozen=True)
class Grid:
    """What the runners need of a sweep-like command: a function over chunks of cells."""

    command: str
    """The spec record's "command"."""
    columns: tuple
    key: tuple
    lane_axis: str
    group_axes: tuple
    max_lanes: int
    """Lanes in one call of ``run`` at most (memory)."""
    axes: Callable[[dict], dict]
    """The values of every key column, from a spec record."""
    record: Callable[[Any], dict]
    subspec: Callable[[Any, Chunk], Any]
    """The spec of one chunk's cells."""
    run: Callable[..., Iterator[list]]
    """``run(spec, done)``: batches of rows, skipping the cells ``done(row)`` marks finished."""
    whole: Callable[[tuple], bool] = lambda group: False
    """Groups whose lanes are one chunk, whatever ``lanes`` (computed at once: cutting saves nothing)."""


def _seeds(ranges) -> list[int]:
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


SWEEP = Grid(
    command="sweep", columns=SWEEP_COLUMNS, key=SWEEP_KEY, lane_axis="seed", group_axes=("beta", "rho", "K"),
    max_lanes=LANES_PER_CALL,
    axes=lambda r: {"policy": r["policies"], "K": r["K"], "seed": _seeds(r["seeds"]), "beta": r["beta"],
                    "rho": r["rho"]},
    record=spec_record,
    # the registry's own Policy objects: run_sweep reuses Belady's faults by identity, and a spec that
    # travelled to a Ray worker holds copies
    subspec=lambda spec, c: replace(spec, betas=[c.group[0]], rhos=[c.group[1]], Ks=[c.group[2]],
                                    seeds=spec.seeds[c.lo:c.hi], policies=[get_policy(p.name) for p in spec.policies]),
    run=run_sweep,
)
MRC = Grid(
    command="mrc", columns=mrc.COLUMNS, key=mrc.KEY, lane_axis="K", group_axes=("policy",),
    max_lanes=mrc.LANES_PER_CHUNK, axes=lambda r: {"policy": r["policies"], "K": r["K"]}, record=mrc.mrc_record,
    subspec=lambda spec, c: mrc.mrc_chunk(spec, c.group[0], c.lo, c.hi), run=mrc.run_mrc,
    whole=lambda group: group[0] in ONE_PASS,
)
GRIDS = {g.command: g for g in (SWEEP, MRC)}


def chunks(grid: Grid, axes: dict, lanes: int) -> list[Chunk]:
    """Every chunk of the grid, group by group, in blocks of ``lanes`` lanes (a whole group: one block)."""
    if lanes < 1:
        raise ValueError(f"lanes per chunk must be >= 1, got {lanes}")
    n = len(axes[grid.lane_axis])
    return [Chunk(tuple(g), lo, min(lo + step, n))
            for g in itertools.product(*(axes[a] for a in grid.group_axes))
            for step in [max(n, 1) if grid.whole(tuple(g)) else lanes] for lo in range(0, n, step)]


def cells(grid: Grid, axes: dict, chunk: Chunk) -> list[tuple]:
    """The keys of a chunk's cells, as a results table reads them back."""
    vals = {k: axes[k] for k in grid.key}
    vals.update({a: [v] for a, v in zip(grid.group_axes, chunk.group)})
    vals[grid.lane_axis] = vals[grid.lane_axis][chunk.lo:chunk.hi]
    return [tuple(map(_text, c)) for c in itertools.product(*(vals[k] for k in grid.key))]


def parse_shard(text: str) -> tuple[int, int]:
    """'3/8' -> (3, 8): shard 3 of 8, counted from 0 (as Slurm's array task ids)."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"--shard must be I/N with 0 <= I < N, counted from 0 (e.g. 3/8), got {text!r}")
    return i, n


def shard_chunks(grid: Grid, axes: dict, shard: tuple[int, int]) -> list[Chunk]:
    """Shard I of N: every N-th chunk from the I-th.  Lane blocks shrink until there are about N
    chunks, so each shard has work even when the grid has fewer groups than shards."""
    i, n = shard
    groups = list(itertools.product(*(axes[a] for a in grid.group_axes)))
    cut = sum(not grid.whole(tuple(g)) for g in groups)
    blocks = math.ceil(max(n - (len(groups) - cut), 1) / max(cut, 1))  # per group that may be cut
    lanes = min(grid.max_lanes, max(1, math.ceil(len(axes[grid.lane_axis]) / blocks)))
    return chunks(grid, axes, lanes)[i::n]


@dataclass
class GridRun:
    written: int
    """Rows written by this run."""
    resumed: int
    """Rows the output already held."""
    chunks_run: int
    chunks_total: int


def write_grid(grid: Grid, spec, path, overwrite: bool = False, bar=None, *, shard: tuple[int, int] | None = None,
               lanes: int | None = None, runner=None) -> GridRun:
    """Run ``spec`` (or shard ``(I, N)`` of it) chunk by chunk into the resumable table ``path``.

    A shard's spec record is the grid's plus ``"shard": [I, N]``.  Chunks whose cells are all in
    the file are skipped, so an interrupted run resumes from its finished chunks.  ``runner(spec,
    chunks)`` yields batches of rows as chunks finish (e.g. on Ray); by default they run here, in
    order, ``lanes`` lanes a chunk.  ``bar`` (tqdm) gets the cells' total and a tick per row."""
    record = grid.record(spec)
    if shard is not None:
        record["shard"] = list(shard)
    axes = grid.axes(record)
    todo = shard_chunks(grid, axes, shard) if shard else chunks(grid, axes, lanes or grid.max_lanes)
    with ResultsTable(path, grid.columns, grid.key, record, overwrite) as table:
        keys = [cells(grid, axes, c) for c in todo]
        pending = [c for c, ks in zip(todo, keys) if not all(k in table.done for k in ks)]
        if bar is not None:
            bar.total = sum(map(len, keys))
            bar.update(sum(k in table.done for ks in keys for k in ks))

        def here(spec, pending):
            for c in pending:
                yield from grid.run(grid.subspec(spec, c), lambda row: table.cell(row) in table.done)

        written = 0
        for rows in (runner or here)(spec, pending):
            before = len(table.done)
            table.append(rows)  # skips cells already there: a retried chunk writes nothing twice
            written += len(table.done) - before
            if bar is not None:
                bar.update(len(table.done) - before)
        return GridRun(written, table.resumed, len(pending), len(todo))


def grid_writer(command: str, *, shard: tuple[int, int] | None = None, ray: str | None = None,
                lanes: int | None = None, device: str = "auto", task_cpus: int = 1):
    """``writer(spec, out, overwrite, bar)`` running ``command``'s grid chunk by chunk: shard ``(I, N)``
    only, and/or as Ray tasks (``ray``: ``"local"`` or a cluster address, see
    :class:`~.ray_runner.RayRunner`), ``lanes`` lanes a chunk unless it is a shard's."""
    grid = GRIDS[command]
    runner = None
    if ray is not None:
        from .ray_runner import RayRunner

        runner = RayRunner(command, ray, device, task_cpus)

    def writer(spec, out, overwrite=False, bar=None):
        return write_grid(grid, spec, out, overwrite, bar, shard=shard, lanes=lanes, runner=runner)

    return writer


def merge(out, inputs, overwrite: bool = False) -> tuple[int, int]:
    """Write the union of the shard outputs ``inputs`` to ``out``: returns (rows, shards).

    The shards must be of one run (spec records equal but for the shard), all N of them, each
    holding exactly its slice's cells and no conflicting rows.  ``out`` gets the unsharded
    run's spec sidecar, so it resumes (a finished run: does nothing) like a local run's output.
    Both files are replaced atomically; an existing ``out`` only with ``overwrite``."""
    out = Path(out)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ValueError("merge: no shard files given")
    if any(p.resolve() == out.resolve() for p in paths):
        raise ValueError(f"merge: {out} is one of the shards; write the union to another file")
    check_target(out)
    if (out.exists() or spec_path(out).exists()) and not overwrite:
        raise ValueError(f"{out} already exists; pass --overwrite to replace it")
    records = [_read_record(p) for p in paths]
    base = {k: v for k, v in records[0].items() if k != "shard"}
    n = records[0]["shard"][1]
    by_index: dict[int, Path] = {}
    for p, r in zip(paths, records):
        other = {k: v for k, v in r.items() if k != "shard"}
        diff = spec_diff(other, base)
        if diff:
            raise ValueError(f"merge: {p} is a shard of a different run than {paths[0]} (differs in: {', '.join(diff)})")
        i, m = r["shard"]
        if m != n:
            raise ValueError(f"merge: {p} is shard {i}/{m} but {paths[0]} is one of {n}")
        if i in by_index:
            raise ValueError(f"merge: shard {i}/{n} given twice ({by_index[i]} and {p})")
        by_index[i] = p
    missing = sorted(set(range(n)) - set(by_index))
    if missing:
        raise ValueError(f"merge: missing shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                         f"of {n} (give all {n} shard files)")
    grid = GRIDS.get(base.get("command"))
    if grid is None:
        raise ValueError(f"merge: {paths[0]} was written by {base.get('command')!r}, which has no shards")
    axes = grid.axes(base)
    rows = []
    for i in range(n):
        rows += _shard_rows(grid, by_index[i], {k for c in shard_chunks(grid, axes, (i, n)) for k in cells(grid, axes, c)},
                            (i, n))
    rows.sort(key=lambda r: [_natural(r[grid.columns.index(k)]) for k in grid.key])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(grid.columns)
    w.writerows(rows)
    write_text_atomic(spec_path(out), json.dumps(base, indent=1, sort_keys=True) + "\n")
    with atomic_path(out) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return len(rows), n


def _read_record(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"merge: {path} does not exist")
    try:
        record = json.loads(spec_path(path).read_text())
    except (OSError, ValueError):
        raise ValueError(f"merge: {path} has no readable {spec_path(path).name}: not the output of a gpupage run") from None
    shard = record.get("shard") if isinstance(record, dict) else None
    if not (isinstance(shard, list) and len(shard) == 2):
        raise ValueError(f"merge: {path} is not a shard (it was not written with --shard)")
    return record


def _shard_rows(grid: Grid, path: Path, expected: set, shard) -> list[list[str]]:
    """The rows of one shard file, checked against the cells of its slice."""
    label = f"shard {shard[0]}/{shard[1]} ({path})"
    with open(path, "rb") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"merge: {label} is being written by a running gpupage command; wait for it") from None
        data = f.read()
    lines = data[:data.rfind(b"\n") + 1].decode().splitlines()  # a row cut by a crash is not a row yet
    if not lines or next(csv.reader([lines[0]])) != list(grid.columns):
        raise ValueError(f"merge: {label} does not have the expected header ({','.join(grid.columns)})")
    idx = [grid.columns.index(k) for k in grid.key]
    seen: dict[tuple, list[str]] = {}
    for row in csv.reader(lines[1:]):
        if len(row) != len(grid.columns):
            raise ValueError(f"merge: {label} has a malformed row: {','.join(row)}")
        key = tuple(row[i] for i in idx)
        if key not in expected:
            raise ValueError(f"merge: {label} holds a cell outside its slice: {','.join(key)}")
        if key in seen and seen[key] != row:
            raise ValueError(f"merge: {label} has conflicting rows for cell {','.join(key)}")
        seen[key] = row
    if len(seen) < len(expected):
        raise ValueError(f"merge: {label} is missing {len(expected) - len(seen)} of its {len(expected)} cells; "
                         "finish it by rerunning its command (it resumes)")
    return list(seen.values())


def _natural(v: str):
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


__all__ = ["Chunk", "Grid", "GridRun", "GRIDS", "SWEEP", "MRC", "chunks", "cells", "parse_shard", "shard_chunks",
           "write_grid", "grid_writer", "merge"]
