"""mrc: miss-ratio curves of every policy on one trace file (thin over gpupage.experiments.mrc)."""

from __future__ import annotations

import click

from .options import (INT64_MAX, INT64_MIN, parse_int_list, quiet_option, resource_options, trace_format_option,
                      warmup_option)
from .simcmds import _policy_names, _progress

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
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Directory for mrc.csv and mrc.png.")
@quiet_option
@resource_options
def mrc(trace_file, policies, K, warmup, sample_rate, fmt, column, seed, out_dir, quiet):
    """Miss-ratio curves of a trace file: every policy at every K in one batch, a CSV and a PNG.

    LRU, LFU and Belady take one stack-distance pass for all K; the other policies run their sizes
    as lanes of one simulation.  Counts are exact (of the sample, with --sample-rate)."""
    from ..core.io import read_trace
    from ..core.shards import check_rate
    from ..core.simulate import resolve_warmup
    from ..experiments.mrc import check_out_dir, describe, miss_ratio_curves, write_curves

    check_rate(sample_rate)
    check_out_dir(out_dir)
    trace = read_trace(trace_file, fmt, column)
    w = resolve_warmup(warmup, trace.requests)
    bar = _progress(quiet, "policy")(len(policies))
    with bar:
        rows = miss_ratio_curves(trace.ids, policies, K, warmup=w, sample_rate=sample_rate, seed=seed,
                                 original=trace.original[trace.ids], progress=bar)
    csv_path, png_path = write_curves(rows, out_dir, describe(trace_file, trace.requests, trace.distinct, w,
                                                              sample_rate))
    for name in policies:  # rows run from the smallest K to the largest
        sel = [r for r in rows if r["policy"] == name]
        click.echo(f"{name:>10}: miss ratio {sel[0]['miss_ratio']:.4f} at K={sel[0]['K']} "
                   f"-> {sel[-1]['miss_ratio']:.4f} at K={sel[-1]['K']}")
    click.echo(f"wrote {len(rows)} rows to {csv_path} and the curves to {png_path}")


COMMANDS = [mrc]
