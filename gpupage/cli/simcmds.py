"""simulate, sweep, reproduce: thin commands over gpupage.simulate / sweep / reproduce."""

from __future__ import annotations

import json
import sys

import click

from .distcmds import report, scale_options, scale_writer
from .options import (CANDIDATES, INT64_MAX, INT64_MIN, Finite, device_option, json_option, k_option, parse_float_list,
                      parse_int_list, quiet_option, resolve_device, resource_options, seeds_option, trace_format_option,
                      warmup_option, zipf_options)

checkpoint_option = click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                                 help="Checkpoint of the learned policy (required by --policy learned).")
candidates_option = click.option("--candidates", type=CANDIDATES, default=None,
                                 help="learned: score only the C least recently accessed blocks (default: all).")


def _policy_names() -> list[str]:
    from ..core.policies import POLICIES  # stdlib-only module: cheap at --help time

    return list(POLICIES)


def _policy_list(ctx, param, value):
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    known = _policy_names()
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise click.BadParameter(f"unknown policy {', '.join(bad) or repr(value)}; choose from {', '.join(known)}")
    return names


def _fraction_list(name):
    def cb(ctx, param, value):
        from ..core.results import _text  # how a results file writes a value (stdlib only)

        vals = parse_float_list(value, name)
        written = {}  # two values written alike would be one cell
        for v in vals:
            if not 0 <= v <= 1:
                raise click.BadParameter(f"{name} must be in [0, 1], got {v}")
            other = written.setdefault(_text(v), v)
            if other != v:
                raise click.BadParameter(f"{name}: {other!r} and {v!r} are one value in the results, which keep "
                                         "6 significant digits")
        return vals
    return cb


def _progress(quiet: bool, unit: str):
    from tqdm import tqdm

    return lambda total: tqdm(total=total, unit=unit, disable=quiet, file=sys.stderr, dynamic_ncols=True)


@click.command()
@click.argument("trace_file", type=click.Path(dir_okay=False))
@click.option("--policy", "policies", default="lru", show_default=True, callback=_policy_list,
              help=f"Policy or comma list: {', '.join(_policy_names())}.")
@k_option(default="64")
@trace_format_option("--format", "fmt")
@click.option("--column", default="0", show_default=True, help="CSV column: header name or 0-based index.")
@click.option("--seed", type=click.IntRange(INT64_MIN, INT64_MAX), default=0, show_default=True,
              help="Seed of the Random policy (64-bit).")
@checkpoint_option
@candidates_option
@warmup_option
@device_option
@json_option
@resource_options
def simulate(trace_file, policies, K, fmt, column, seed, checkpoint, candidates, warmup, device, as_json):
    """Replay a real trace file: requests, distinct blocks, compulsory faults, faults, fault rate.

    With --warmup, requests and faults count only the requests after the warm-up."""
    from ..experiments.calls import simulate_file

    rows = simulate_file(trace_file, policies, K, fmt=fmt, column=column, seed=seed, device=resolve_device(device),
                         warmup=warmup, checkpoint=checkpoint, candidates=candidates)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo(f"{row['policy']:>8} K={row['K']:<6} requests={row['requests']} distinct={row['distinct']} "
                       f"compulsory={row['compulsory_faults']} faults={row['faults']} "
                       f"non_compulsory={row['non_compulsory_faults']} fault_rate={row['fault_rate']:.4f}")


@click.command()
@click.option("--policies", default="lru,belady", show_default=True, callback=_policy_list,
              help=f"Comma list from: {', '.join(_policy_names())}.")
@k_option(default="8")
@seeds_option()
@click.option("--beta", "betas", default="0", show_default=True, callback=_fraction_list("--beta"),
              help="Perturbation levels: exactly floor(beta*T) requests flipped.")
@click.option("--rho", "rhos", default="1", show_default=True, callback=_fraction_list("--rho"),
              help="Retrieval recall: each request wrong with probability 1-rho.")
@click.option("--eta", type=Finite(0), default=None, help="Prediction noise for prediction-based policies (>= 0).")
@click.option("--family", type=click.Choice(["zipf", "cyclic"]), default="zipf", show_default=True,
              help="zipf: App. B non-stationary Zipf; cyclic: K+1 blocks in a cycle (Thm 3).")
@zipf_options
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="CSV file, one row per cell; resumed when it holds rows of the same sweep.")
@click.option("--overwrite", is_flag=True, help="Start over, replacing --out's rows (default: resume).")
@checkpoint_option
@candidates_option
@warmup_option
@device_option
@quiet_option
@scale_options
@resource_options
def sweep(policies, K, seeds, betas, rhos, eta, family, M, alpha, W, shift, T, out, overwrite, checkpoint, candidates,
          warmup, device, quiet, **scale):
    """Run a (policy x K x seed x beta x rho) grid; one CSV row per cell with Belady's ratio.

    An existing --out of the same sweep resumes: its finished cells are kept and skipped.
    """
    from ..experiments.calls import sweep_to_csv

    if eta is not None and eta < 0:
        raise click.BadParameter(f"--eta must be >= 0, got {eta}")
    writer = scale_writer("sweep", device, **scale)
    ran = sweep_to_csv(out, policies, K, seeds, betas, rhos, dict(M=M, alpha=alpha, W=W, shift=shift, T=T),
                       family=family, device=resolve_device(device) if scale["ray_address"] is None else "cpu",
                       eta=eta, overwrite=overwrite, progress=_progress(quiet, "cell"), warmup=warmup,
                       checkpoint=checkpoint, candidates=candidates, writer=writer)
    if writer is not None:
        return report(ran, out, quiet)
    n, kept = ran
    resumed = f" ({kept} already there)" if kept else ""
    click.echo(f"wrote {n} rows to {out}{resumed}", err=quiet)


@click.command()
@click.option("--out", "out_dir", default="out/reproduce", show_default=True, type=click.Path(file_okay=False),
              help="Directory for tables, summary.json and plots.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run's files in --out (default: refuse).")
@device_option
@quiet_option
@resource_options
def reproduce(out_dir, overwrite, device, quiet):
    """Reproduce the paper's §6 validation: Figures 4 and 5, tables and summary.json."""
    from ..experiments.reproduce import comparison_rows, reproduce as run

    summary = run(out_dir, device=resolve_device(device), progress_factory=_progress(quiet, "step"),
                  overwrite=overwrite)
    click.echo(f"{'':40} {'ours (mean ± sd)':>18}   paper")
    for metric, ours, paper in comparison_rows(summary):
        click.echo(f"{metric:40} {ours:>18}   {paper}")
    if summary.get("kept"):
        click.echo(f"{out_dir} already holds this run's tables, summary.json and plots: nothing recomputed "
                   "(--overwrite recomputes them)")
    else:
        click.echo(f"wrote tables, summary.json and 4 plots to {out_dir}")


COMMANDS = [simulate, sweep, reproduce]

__all__ = ["COMMANDS", "parse_int_list"]
