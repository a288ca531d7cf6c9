"""bounds, multiagent: thin commands over gpupage.experiments.bounds / .multiagent."""

from __future__ import annotations

import json
import sys

import click

from .options import (INT64_MAX, INT64_MIN, MAX_BLOCKS, MAX_REQUESTS, Finite, json_option, parse_float_list,
                      parse_int_list, quiet_option, resource_options, seeds_option)


def _floats(name):
    return lambda ctx, param, value: None if value is None else tuple(parse_float_list(value, name))


def _ints(name, lo=None, hi=None):
    return lambda ctx, param, value: None if value is None else tuple(parse_int_list(value, name, lo, hi))


def _bar(quiet: bool, total: int, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=quiet, file=sys.stderr, dynamic_ncols=True)


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for bounds.json, report.md and the PNG plots.")
@click.option("--quick", is_flag=True, help="Small settings (seconds), for smoke tests.")
@click.option("--lanes", type=click.IntRange(1), default=None, help="Traces per setting [default: 10, quick 3].")
@click.option("--T", "T", type=click.IntRange(2, MAX_REQUESTS), default=None, help="Trace length [default: 5000].")
@click.option("--K", "K", type=click.IntRange(1), default=None,
              help="Cache size of the single-K sections, at most T [default: 8].")
@click.option("--seed", type=click.IntRange(INT64_MIN, INT64_MAX), default=0, show_default=True,
              help="Base seed (64-bit; each setting's lanes take the seeds after it).")
@click.option("--sigma", "sigmas", default=None, callback=_floats("--sigma"),
              help="Closed-loop strengths for Theorem 4, e.g. 0,0.1,0.3 (each in [0, 1]).")
@click.option("--eta", "etas", default=None, callback=_floats("--eta"),
              help="Prediction-noise scales of the eta plot, e.g. 0,0.5,1,2 (each >= 0).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Controller checkpoint for Prop. 6 [default: checkpoints/pagecontroller_k{K}.pt, else a noisy-Belady policy].")
@click.option("--prefetch-checkpoint", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Prefetch controller for Lemma 2 [default: checkpoints/prefetch_blackbox_k{K}.pt, else follow-the-hint "
                   "alone].")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run's files in --out (default: refuse).")
@quiet_option
@resource_options
def bounds(out_dir, quick, lanes, T, K, seed, sigmas, etas, checkpoint, prefetch_checkpoint, overwrite, quiet):
    """Measure every result of the paper into DIR: bounds.json, report.md, PNG plots."""
    from ..experiments.bounds.run import BoundsConfig, progress_steps, run_bounds

    kw = dict(lanes=lanes, T=T, K=K, seed=seed, sigmas=sigmas, etas=etas, checkpoint=checkpoint,
              prefetch_checkpoint=prefetch_checkpoint)
    kw = {k: v for k, v in kw.items() if v is not None}
    cfg = BoundsConfig.quick(**kw) if quick else BoundsConfig(**kw)
    with _bar(quiet, progress_steps(cfg), "step") as bar:
        entries = run_bounds(cfg, out_dir, progress=lambda: bar.update(1), overwrite=overwrite)
    for e in entries:
        click.echo(f"{e['id']:>15}  holds={'yes' if e['holds'] else 'NO '}  slack={e['slack']:.4g}")
    click.echo(f"wrote {out_dir}/bounds.json, report.md and plots")


@click.command()
@click.option("--n", "ns", default="2,4,8", show_default=True, callback=_ints("--n (agents)", lo=1), help="Numbers of agents.")
@click.option("--K-per-agent", "K_per_agent", type=click.IntRange(1), default=8, show_default=True,
              help="K_shared = K_PER_AGENT * n (beyond T, as T: nothing is evicted).")
@click.option("--W", "Ws", default="4,8,16,32", show_default=True, callback=_ints("--W", lo=1, hi=MAX_BLOCKS),
              help="Working-set sizes (each at most M); agent i gets W[i mod len].")
@seeds_option(default="0-4")
@click.option("--M", "M", type=click.IntRange(1, MAX_BLOCKS), default=64, show_default=True, help="Blocks per agent.")
@click.option("--alpha", type=Finite(0), default=1.2, show_default=True, help="Zipf exponent.")
@click.option("--shift", type=click.IntRange(1), default=500, show_default=True, help="Phase length per agent.")
@click.option("--T", "T", type=click.IntRange(1, MAX_REQUESTS), default=5000, show_default=True,
              help="Requests per agent.")
@click.option("--window", type=click.IntRange(1), default=200, show_default=True,
              help="Demand window of the dynamic split.")
@click.option("--epoch", type=click.IntRange(1), default=100, show_default=True,
              help="Global requests between re-splits.")
@json_option
@quiet_option
@resource_options
def multiagent(ns, K_per_agent, Ws, seeds, M, alpha, shift, T, window, epoch, as_json, quiet):
    """Multi-agent sharing of K_shared slots: static vs shared LRU vs demand split (Def 18)."""
    from ..experiments.multiagent import multiagent_table
    from ..core.traces import ZipfParams

    zipf = ZipfParams(M=M, alpha=alpha, W=min(Ws), shift=shift, T=T)
    with _bar(quiet or as_json, len(ns), "n") as bar:
        rows = multiagent_table(ns, K_per_agent, seeds, zipf, Ws, window, epoch, progress=lambda: bar.update(1))
    for r in rows:
        if as_json:
            click.echo(json.dumps(r))
        else:
            per = " ".join(f"{v:.0f}" for v in r["per_agent"])
            click.echo(f"n={r['n']} K_shared={r['K_shared']:<3} {r['strategy']:>7}  total={r['total']:.1f} "
                       f"fault_rate={r['fault_rate']:.4f}  per_agent=[{per}]")


COMMANDS: list[click.Command] = [bounds, multiagent]
