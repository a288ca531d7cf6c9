"""prefetch: the prefetching table (issue 13), a thin command over gpupage.experiments.prefetching;
prefetch-train: PPO for the prefetch decision (gpupage.controller.prefetch_train); and the prefetch
checkpoint's branch of ``gpupage evaluate`` (gpupage.experiments.prefetch_controller)."""

from __future__ import annotations

import json

import click

from .options import (MAX_REQUESTS, Finite, json_option, k_option, parse_float_list, parse_int_list, resource_options,
                      seeds_option, trace_format_option, zipf_options)


def _list(parser, name):
    return lambda ctx, param, value: parser(value, name)


def _evictions(ctx, param, value):
    """The --eviction names, each once: those prefetching has a loop for (any other is refused here, before
    a 'never' row could run it as a plain policy)."""
    from ..core.prefetch import OTHER_LOOPS, OWN_LOOP

    names = tuple(dict.fromkeys(e.strip() for e in value.split(",") if e.strip()))
    known = [*OWN_LOOP, *OTHER_LOOPS]
    if not names:
        raise click.BadParameter("--eviction: no values given")
    for name in names:
        if name not in known:
            raise click.BadParameter(f"--eviction: prefetching with {name!r} eviction is not implemented; "
                                     f"choose from {', '.join(known)}")
    return names


@click.command()
@click.argument("trace_file", required=False, type=click.Path(dir_okay=False))
@k_option(default="8", help="Cache size K in blocks (one).")
@click.option("--lookahead", "L", type=click.IntRange(1, MAX_REQUESTS), default=4, show_default=True, help="Hint lookahead L: h_t names r_{t+L}.")
@click.option("--hint-noise", "eps", default="0,0.05,0.1,0.2,0.4,1", show_default=True,
              callback=_list(parse_float_list, "--hint-noise"), help="Hint noise levels eps in [0, 1].")
@click.option("--eviction", "evictions", default="lru,adaptive", show_default=True, callback=_evictions,
              help="Evictions: lru, lfu, fifo, adaptive.")
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
def prefetch(trace_file, K, L, eps, evictions, windows, P, lam_fetch, lam_evict, seeds, family, M, alpha, W, shift,
             T, fmt, column, as_json):
    """Prefetching with hints: never, follow_hint, next_in_call (files with calls), the lookahead oracle, OPT.

    Without TRACE_FILE the lanes are the family's, one per seed; with it, the file once per seed (each
    seed draws its own hint noise)."""
    from ..core.traces import ZipfParams
    from ..experiments.prefetching import PrefetchSpec, format_table, run_prefetch

    if len(K) != 1:
        raise click.BadParameter("give one cache size", param_hint="--K")
    spec = PrefetchSpec(K=K[0], L=L, eps=tuple(eps), evictions=evictions,
                        windows=tuple(windows), P=P, lam_fetch=lam_fetch, lam_evict=lam_evict)
    rows = run_prefetch(spec, list(seeds), trace_file, fmt, column, family,
                        ZipfParams(M=M, alpha=alpha, W=W, shift=shift, T=T))
    click.echo("\n".join(json.dumps(r) for r in rows) if as_json else format_table(rows))


def prefetch_eval_options(f):
    """``gpupage evaluate``'s overrides of a prefetch checkpoint's settings (default: as trained)."""
    for opt in reversed([
        click.option("--lookahead", "L", type=click.IntRange(1, MAX_REQUESTS), default=None, help="Prefetch checkpoints: hint lookahead L."),
        click.option("--hint-noise", "eps", type=Finite(), default=None, help="Prefetch checkpoints: hint noise eps."),
        click.option("--lambda-fetch", "lam_fetch", type=Finite(), default=None,
                     help="Prefetch checkpoints: cost of a prefetch."),
        click.option("--lambda-evict", "lam_evict", type=Finite(), default=None,
                     help="Prefetch checkpoints: cost of an eviction."),
    ]):
        f = opt(f)
    return f


def evaluate_prefetch_checkpoint(checkpoint, K, seeds, params, as_json, **overrides) -> None:
    """The prefetch branch of ``gpupage evaluate``: every policy's cost, faults and prefetches over the seeds."""
    from ..experiments.prefetch_controller import evaluate_prefetch, policy_rows

    if len(K) != 1:
        raise click.BadParameter("give one cache size", param_hint="--K")
    res = evaluate_prefetch(checkpoint, list(seeds), params, K=K[0], **overrides)
    if as_json:
        click.echo(json.dumps(res))
        return
    s = res["settings"]
    click.echo(f"{checkpoint} on {res['lanes']} Zipf lanes, K={s['K']} L={s['L']} eps={s['eps']:g} "
               f"lambda_fetch={s['lam_fetch']:g} lambda_evict={s['lam_evict']:g}")
    click.echo("| policy | cost | sd | faults | prefetches |\n|---|---|---|---|---|")
    for name, v in policy_rows(res).items():
        click.echo(f"| {name} | {v['cost']['mean']:.1f} | {v['cost']['sd']:.1f} | {v['faults']['mean']:.1f} | "
                   f"{v['prefetches']['mean']:.1f} |")
    p = res["paired"]
    d = p["controller_minus_best"]
    click.echo(f"controller - {p['best_heuristic']}: {d['mean']:+.1f} +- {d['se']:.1f} (s.e.) per lane, wins "
               f"{p['wins']}/{res['lanes']}; cost / OPT {p['controller_over_opt']:.2f}, / oracle "
               f"{p['controller_over_oracle']:.2f}")


@click.command("prefetch-train")
@click.option("--out", default="checkpoints/prefetch_blackbox_k8.pt", show_default=True,
              type=click.Path(dir_okay=False), help="Checkpoint to write.")
@click.option("--overwrite", "--force", "overwrite", is_flag=True,
              help="Replace an existing checkpoint (--force: its earlier name).")
@click.option("--mode", type=click.Choice(["blackbox", "whitebox"]), default="blackbox", show_default=True)
@k_option(default="8", help="Cache size K (one).")
@click.option("--lookahead", "L", type=click.IntRange(1, MAX_REQUESTS), default=4, show_default=True,
              help="Hint lookahead L.")
@click.option("--train-noise", "eps_choices", default="0,0.05,0.1,0.2,0.4,0.7,1", show_default=True,
              callback=_list(parse_float_list, "--train-noise"), help="Hint noise of a training lane, drawn from these.")
@click.option("--hint-noise", "eps_eval", type=Finite(), default=0.1, show_default=True,
              help="Noise the checkpoint is validated and, by default, evaluated at.")
@click.option("--lambda-fetch", "lam_fetch", type=Finite(), default=0.3, show_default=True)
@click.option("--lambda-evict", "lam_evict", type=Finite(), default=0.0, show_default=True)
@click.option("--no-hints", is_flag=True, help="Train without hints (every hint -1): a victim-only controller.")
@click.option("--victims", type=click.Choice(["controller", "adaptive"]), default="controller", show_default=True,
              help="Who picks victims: the controller's victim head, or adaptive (the prefetch-only ablation).")
@click.option("--imitate", type=click.Choice(["none", "adaptive", "belady"]), default="adaptive", show_default=True,
              help="The victim the victim head imitates (a loss term during PPO).")
@click.option("--imitate-iterations", type=click.IntRange(0), default=0, show_default=True,
              help="Imitation rollouts before PPO (the imitation loss stays in PPO's either way).")
@click.option("--iterations", type=click.IntRange(1), default=150, show_default=True, help="PPO iterations.")
@click.option("--val-every", type=click.IntRange(1), default=10, show_default=True,
              help="PPO iterations between validation checks.")
@click.option("--lanes", type=click.IntRange(1), default=256, show_default=True)
@click.option("--num-steps", type=click.IntRange(1), default=64, show_default=True, help="Decisions per lane per rollout.")
@click.option("--episode-length", "T", type=click.IntRange(2, MAX_REQUESTS), default=2000, show_default=True,
              help="Requests per training episode.")
@click.option("--lr", type=Finite(0, min_open=True), default=1e-3, show_default=True)
@click.option("--seed-start", type=click.IntRange(0), default=10000, show_default=True, help="First training seed.")
@click.option("--torch-seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No per-iteration log.")
@resource_options
def prefetch_train(out, overwrite, mode, K, L, eps_choices, eps_eval, lam_fetch, lam_evict, no_hints, victims, imitate,
                   imitate_iterations, iterations, val_every, lanes, num_steps, T, lr, seed_start, torch_seed, quiet):
    """Train the prefetch controller with PPO (issue 13): when to follow a hint and which block to evict."""
    import os
    import sys

    from ..controller.prefetch_train import PrefetchTrainConfig, train_prefetch
    from ..core.results import check_writable

    if len(K) != 1:
        raise click.BadParameter("give one cache size", param_hint="--K")
    check_writable(out)  # now, not when the trained controller is written
    if os.path.exists(out) and not overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    cfg = PrefetchTrainConfig(K=K[0], L=L, lam_fetch=lam_fetch, lam_evict=lam_evict, mode=mode,
                              hints=not no_hints, victims=victims, imitate=imitate,
                              imitate_iterations=imitate_iterations, eps_choices=tuple(eps_choices), eps_eval=eps_eval,
                              lanes=lanes, T=T, num_steps=num_steps, iterations=iterations, val_every=val_every, lr=lr,
                              seed_start=seed_start, torch_seed=torch_seed)
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    log = (lambda row: None) if quiet else (lambda row: click.echo(json.dumps(row), err=True))
    _, ck = train_prefetch(cfg, out, command="gpupage " + " ".join(sys.argv[1:]), log=log)
    kept = min((r for r in ck["history"] if "val_cost" in r), key=lambda r: r["val_cost"] + r.get("val_cost_eps1", 0))
    at = f"at eps={eps_eval:g}, {kept['val_cost_eps1']:.1f} at eps=1" if "val_cost_eps1" in kept else "without hints"
    click.echo(f"wrote {out} (kept iteration {kept['iteration']}: validation cost {kept['val_cost']:.1f} {at})")


COMMANDS = [prefetch, prefetch_train]
