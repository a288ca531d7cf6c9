"""mrc: miss-ratio curves of every policy on one trace file (thin over gpupage.experiments.mrc)."""

from __future__ import annotations

import click

from .distcmds import report, scale_options, scale_writer
from .options import (INT64_MAX, INT64_MIN, parse_int_list, quiet_option, resource_options, trace_format_option,
                      warmup_option)
from .simcmds import _policy_names, _progress, candidates_option, checkpoint_option

DEFAULT_POLICIES = "lru,fifo,lfu,arc,clock,belady"


def _policies(ctx, param, value):
    """A comma list of registry names, or ``online``: every registry policy that needs no future, and belady."""
    from ..core.policies import ONLINE

    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    names = [m for n in names for m in ((*ONLINE, "belady") if n == "online" else (n,))]
    known = _policy_names()
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise click.BadParameter(f"unknown policy {', '.join(bad) or repr(value)}; choose from online, {', '.join(known)}")
    return list(dict.fromkeys(names))


def _sizes(ctx, param, value):
    return "auto" if value.strip().lower() == "auto" else parse_int_list(value, "--K")


@click.command()
@click.argument("trace_file", type=click.Path(dir_okay=False))
@click.option("--policies", default=DEFAULT_POLICIES, show_default=True, callback=_policies,
              help=f"Comma list from: {', '.join(_policy_names())}; 'online' is every policy that needs no future, "
                   "and belady (adaptive scans its K slots on every miss: slow at large K).")
@click.option("--K", "K", default="auto", show_default=True, callback=_sizes,
              help="Cache sizes, e.g. 8,64,512, or auto: 64 sizes log-spaced from 1 to the trace's distinct blocks.")
@warmup_option
@click.option("--sample-rate", type=float, default=1.0, show_default=True,
              help="SHARDS spatial sampling: keep the blocks whose id hash is below this rate in (0, 1] and "
                   "simulate K * rate blocks.")
@trace_format_option("--format", "fmt")
@click.option("--column", default="0", show_default=True, help="CSV column: header name or 0-based index.")
@click.option("--seed", type=click.IntRange(INT64_MIN, INT64_MAX), default=0, show_default=True,
              help="Seed of the Random policy and of the sample.")
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Directory for mrc.csv (resumed when it holds rows of the same run) and mrc.png.")
@click.option("--overwrite", is_flag=True, help="Start over, replacing --out's mrc.csv (default: resume).")
@checkpoint_option
@candidates_option
@quiet_option
@scale_options
@resource_options
def mrc(trace_file, policies, K, warmup, sample_rate, fmt, column, seed, out_dir, overwrite, checkpoint, candidates,
        quiet, **scale):
    """Miss-ratio curves of a trace file: every policy at every K in one batch, a CSV and a PNG.

    LRU, LFU and Belady take one stack-distance pass for all K; the other policies run their sizes
    as lanes of one simulation.  Counts are exact (of the sample, with --sample-rate).  The grid's
    cells are (policy, K): an existing --out of the same run resumes, --shard and --ray as sweep's
    (a shard writes no plot: merge the shards' mrc.csv into DIR/mrc.csv, then rerun without --shard)."""
    from ..core.results import claim_dir
    from ..core.shards import check_rate
    from ..distributed.shard import grid_writer
    from ..experiments.calls import learned_options
    from ..experiments.mrc import check_out_dir, describe, finish_curves, mrc_spec

    check_rate(sample_rate)
    out = check_out_dir(out_dir)
    if not (out / "mrc.csv").exists():  # a fresh run: a plot already there is someone else's
        claim_dir(out, ["mrc.png"], overwrite)
    # the curves are computed on the CPU: Ray tasks ask for CPUs, never a GPU
    writer = scale_writer("mrc", "cpu", **scale) or grid_writer("mrc")
    spec = mrc_spec(trace_file, policies, K, warmup, sample_rate, seed, fmt, column,
                    options=learned_options(checkpoint, candidates) or None)
    bar = _progress(quiet, "cell")(len(spec.policies) * len(spec.Ks))
    with bar:
        ran = writer(spec, out / "mrc.csv", overwrite, bar)
    if scale["shard"] is not None:
        return report(ran, str(out / "mrc.csv"), quiet)
    src = spec.source
    rows, png = finish_curves(spec, out, describe(trace_file, src["requests"], src["distinct"], spec.warmup,
                                                  sample_rate))
    for name in spec.policies:
        sel = [r for r in rows if r["policy"] == name]
        click.echo(f"{name:>10}: miss ratio {sel[0]['miss_ratio']:.4f} at K={sel[0]['K']} "
                   f"-> {sel[-1]['miss_ratio']:.4f} at K={sel[-1]['K']}")
    report(ran, str(out / "mrc.csv"), quiet)
    click.echo(f"the curves are in {png}")


COMMANDS = [mrc]
