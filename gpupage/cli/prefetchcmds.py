"""prefetch: the prefetching table (issue 13), a thin command over gpupage.experiments.prefetching."""

from __future__ import annotations

import json

import click

from .options import (MAX_REQUESTS, Finite, json_option, k_option, parse_float_list, parse_int_list, resource_options,
                      seeds_option, trace_format_option, zipf_options)


def _list(parser, name):
    return lambda ctx, param, value: parser(value, name)


@click.command()
@click.argument("trace_file", required=False, type=click.Path(dir_okay=False))
@k_option(default="8", help="Cache size K in blocks (one).")
@click.option("--lookahead", "L", type=click.IntRange(1, MAX_REQUESTS), default=4, show_default=True, help="Hint lookahead L: h_t names r_{t+L}.")
@click.option("--hint-noise", "eps", default="0,0.05,0.1,0.2,0.4,1", show_default=True,
              callback=_list(parse_float_list, "--hint-noise"), help="Hint noise levels eps in [0, 1].")
@click.option("--eviction", default="lru,adaptive", show_default=True, help="Evictions: lru, lfu, fifo, adaptive.")
@click.option("--windows", default="0,4,16", show_default=True, callback=_list(parse_int_list, "--windows"),
              help="Lookahead oracle windows.")
@click.option("--prefetches", "P", type=click.IntRange(0, MAX_REQUESTS), default=1, show_default=True, help="Prefetches per step P.")
@click.option("--lambda-fetch", "lam_fetch", type=Finite(), default=0.3, show_default=True,
              help="Cost of a prefetch, in (0, 1] (a fault costs 1).")
@click.option("--lambda-evict", "lam_evict", type=Finite(), default=0.0, show_default=True,
              help="Cost of an eviction, >= 0.")
@seeds_option(default="1000-1039")
@click.option("--family", type=click.Choice(["zipf", "cyclic", "closed-loop"]), default="zipf", show_default=True,
              help="Trace family without TRACE_FILE (closed-loop traces have no hints: their future depends on "
                   "the policy).")
@zipf_options
@trace_format_option("--format", "fmt")
@click.option("--column", default="0", show_default=True, help="CSV column: header name or 0-based index.")
@json_option
@resource_options
def prefetch(trace_file, K, L, eps, eviction, windows, P, lam_fetch, lam_evict, seeds, family, M, alpha, W, shift,
             T, fmt, column, as_json):
    """Prefetching with hints: never, follow_hint, next_in_call (files with calls), the lookahead oracle, OPT.

    Without TRACE_FILE the lanes are the family's, one per seed; with it, the file once per seed (each
    seed draws its own hint noise)."""
    from ..core.traces import ZipfParams
    from ..experiments.prefetching import PrefetchSpec, format_table, run_prefetch

    if len(K) != 1:
        raise click.BadParameter("give one cache size", param_hint="--K")
    spec = PrefetchSpec(K=K[0], L=L, eps=tuple(eps), evictions=tuple(e.strip() for e in eviction.split(",") if e.strip()),
                        windows=tuple(windows), P=P, lam_fetch=lam_fetch, lam_evict=lam_evict)
    rows = run_prefetch(spec, list(seeds), trace_file, fmt, column, family,
                        ZipfParams(M=M, alpha=alpha, W=W, shift=shift, T=T))
    click.echo("\n".join(json.dumps(r) for r in rows) if as_json else format_table(rows))


COMMANDS = [prefetch]
