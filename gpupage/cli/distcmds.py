"""merge, and the scale-out options of sweep-like commands (--shard, --ray): click only at import."""

from __future__ import annotations

import click


def scale_options(f):
    """--shard, --ray, --chunk-lanes, --task-cpus: read by :func:`scale_writer`."""
    for opt in reversed([
        click.option("--shard", default=None, metavar="I/N",
                     help="Run only shard I of N (0 <= I < N) of the grid into its own --out; "
                          "`gpupage merge` joins the N outputs (Slurm arrays: I = $SLURM_ARRAY_TASK_ID)."),
        click.option("--ray", "ray_address", default=None, metavar="local|ADDRESS",
                     help="Run the grid's chunks as Ray tasks: 'local' starts Ray on this machine, an address "
                          "(e.g. auto, HEAD:6379) joins a running cluster; needs pip install 'gpupage[distributed]'."),
        click.option("--chunk-lanes", type=click.IntRange(1, 1 << 24), default=None,
                     help="With --ray: lanes per chunk, one task (sweep: seeds [default: 16384]; mrc: sizes of one "
                          "policy [default: 64]; LRU, LFU and Belady curves are always one task)."),
        click.option("--task-cpus", type=click.IntRange(1, 4096), default=None,
                     help="With --ray: CPUs (numba threads) each CPU task asks for [default: 1]."),
    ]):
        f = opt(f)
    return f


def scale_writer(command: str, device: str, shard, ray_address, chunk_lanes, task_cpus):
    """None for a plain local run; else the writer of a shard and/or a Ray run (``device`` unresolved:
    on Ray, 'auto' means the cluster's GPUs when it has any)."""
    if ray_address is None and (chunk_lanes is not None or task_cpus is not None):
        raise click.UsageError("--chunk-lanes and --task-cpus apply to --ray runs only")
    if shard is not None and chunk_lanes is not None:
        raise click.UsageError("--chunk-lanes cannot be combined with --shard: a shard's chunks are fixed by I/N, "
                               "so that merge can check them")
    if shard is None and ray_address is None:
        return None
    from ..distributed.shard import grid_writer, parse_shard

    return grid_writer(command, shard=parse_shard(shard) if shard is not None else None, ray=ray_address,
                       lanes=chunk_lanes, device=device, task_cpus=task_cpus or 1)


def report(run, out: str, quiet: bool) -> None:
    """The last line of a chunked run."""
    resumed = f" ({run.resumed} already there)" if run.resumed else ""
    click.echo(f"wrote {run.written} rows to {out}{resumed}; ran {run.chunks_run} of {run.chunks_total} chunks",
               err=quiet)


@click.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The merged CSV (and its spec sidecar): resumable as the unsharded run's output.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (default: refuse).")
def merge(shards, out, overwrite):
    """Join the outputs of all N `--shard I/N` runs of one sweep (or mrc: their DIR/mrc.csv) into one file,
    equal to an unsharded run's.

    Checks that the shards are of the same run, that none is missing or unfinished, and that no
    two rows of a cell conflict.
    """
    from ..distributed.shard import merge as run

    rows, n = run(out, shards, overwrite)
    click.echo(f"merged {n} shards: {rows} rows to {out}")


COMMANDS = [merge]
