"""train, evaluate: the Page Controller's commands (thin over gpupage.controller.ppo / .evaluate)."""

from __future__ import annotations

import inspect
import json
import shlex
import sys

import click

from .options import (CANDIDATES, INT64_MAX, INT64_MIN, MAX_THREADS, Finite, checked_text, device_option, json_option,
                      k_option, memory_option, parse_int_list, quiet_option, resource_options, seeds_option,
                      trace_format_option, warmup_option, zipf_options)
from .prefetchcmds import evaluate_prefetch_checkpoint, prefetch_eval_options


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write (.pt).")
@click.option("--mode", type=click.Choice(["blackbox", "whitebox"]), default="blackbox", show_default=True,
              help="Features: request history only, or plus the generator's latent state (§5.5).")
@click.option("--K", "K", type=click.IntRange(1), default=8, show_default=True,
              help="Cache size K_b to train at (at most --T).")
@click.option("--bc-Ks", "bc_Ks", default=None, help="Train behaviour cloning on several cache sizes, e.g. 4,8,16.")
@click.option("--hidden", type=click.IntRange(1), default=48, show_default=True, help="Controller width.")
@click.option("--bc-rounds", type=click.IntRange(-1), default=3, show_default=True,
              help="DAgger rounds after the Belady round (-1: no behaviour cloning).")
@click.option("--bc-lanes", type=click.IntRange(1), default=64, show_default=True,
              help="Traces per behaviour-cloning round.")
@click.option("--bc-epochs", type=click.IntRange(1), default=4, show_default=True,
              help="Epochs over the data per round.")
@click.option("--bc-lr", type=Finite(0, min_open=True), default=3e-3, show_default=True,
              help="Behaviour-cloning learning rate.")
@click.option("--bc-beta", type=Finite(0, 1), default=0.5, show_default=True,
              help="Expert share of the first DAgger round's decisions (halved each round).")
@click.option("--bc-rank-coef", type=Finite(0), default=0.0, show_default=True,
              help="Weight of the listwise next-use ranking loss.")
@click.option("--ppo-iterations", type=click.IntRange(0), default=0, show_default=True,
              help="PPO iterations after cloning.")
@click.option("--lanes", type=click.IntRange(1), default=128, show_default=True, help="PPO parallel lanes.")
@click.option("--lr", type=Finite(0, min_open=True), default=3e-4, show_default=True, help="PPO learning rate.")
@click.option("--ent-coef", type=Finite(0), default=0.003, show_default=True, help="PPO entropy bonus.")
@click.option("--critic-warmup", type=click.IntRange(0), default=0, show_default=True,
              help="PPO iterations training only the critic.")
@click.option("--reward-baseline", default=None,
              help="PPO reward: faults saved against this online policy on the same trace (e.g. lru) "
                   "[default: minus the faults].")
@click.option("--init", "init", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Start PPO from this controller checkpoint (with --bc-rounds -1).")
@click.option("--init-sharpen", type=Finite(0, min_open=True), default=1.0, show_default=True,
              help="Multiply --init's slot scores by this: above 1 the same greedy policy with less entropy, "
                   "so PPO samples near it.")
@click.option("--val-every", type=click.IntRange(0), default=10, show_default=True,
              help="Validate the greedy controller every N PPO iterations (and after cloning and the last "
                   "iteration); --out gets the best on validation.  0: never, --out gets the last.")
@click.option("--val-seeds", default="20000-20031", show_default=True,
              callback=checked_text(parse_int_list, "--val-seeds"),
              help="Validation seeds (keep them apart from training and evaluation seeds).")
@click.option("--seed-start", type=click.IntRange(INT64_MIN, INT64_MAX), default=10000, show_default=True,
              help="First training seed (keep evaluation seeds below it).")
@click.option("--torch-seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="Initialisation/sampling seed.")
@zipf_options
@click.option("--resume", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Continue from a checkpoint this command wrote.")
@click.option("--log-dir", type=click.Path(file_okay=False), default=None,
              help="Where train_log.csv and train_curve.png go [default: next to --out].")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=1, show_default=True,
              help="torch and numba threads (the model is small: more threads only contend with each other).")
@click.option("--nproc", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Data-parallel ranks on this machine (runs torchrun: one GPU each on CUDA, gloo on the CPU); "
                   "they split --lanes and --bc-lanes and train as one process with all of them.")
@device_option
@quiet_option
@memory_option
@click.option("--policy", type=click.Choice(["controller", "learned"]), default="controller", show_default=True,
              help="controller: the torch Page Controller; learned: the registry's integer `learned` policy "
                   "(behaviour cloning + DAgger at simulator speed; --bc-* options, --bc-Ks or --K its cache sizes).")
@click.option("--trace-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="learned: train on windows of this trace file's first --train-calls of its calls.")
@trace_format_option("--format", "trace_format")
@click.option("--train-calls", type=Finite(0, 1, min_open=True), default=0.8, show_default=True,
              help="learned: fraction of the file's calls (requests, without calls) trained on; the rest is never read.")
@click.option("--window", type=click.IntRange(1), default=20000, show_default=True,
              help="learned: requests per training window (enough to fill the largest cache).")
@click.option("--candidates", type=CANDIDATES, default=None,
              help="learned: train the policy with option candidates=C (the C least recently accessed slots).")
@click.option("--stride", type=click.IntRange(1), default=1, show_default=True,
              help="learned: record every this many-th decision of a window.")
@click.option("--learned-hidden", default="32,16", show_default=True, help="learned: widths of its two hidden layers.")
@click.option("--teacher", type=click.Choice(["belady", "latent_min", "hit_density", "lfu_mru"]), default="belady",
              show_default=True,
              help="learned: whose choice is cloned: Belady's (farthest next use); the Zipf generator's expected "
                   "requests (Zipf lanes only); or LHD's hit-density table, estimated on the training part of "
                   "--trace-file at each cache size (gpupage.controller.hit_density); or the fewest accesses "
                   "(count class), then the youngest (lfu_mru).")
@click.option("--tie-rule", type=click.Choice(["any", "lru"]), default="any", show_default=True,
              help="learned: the target among the teacher's equally good slots: any of them, or the least "
                   "recently used (the policy's own tie rule).")
@click.option("--hard-weight", type=Finite(0, min_open=True), default=1.0, show_default=True,
              help="learned, with --tie-rule lru: loss weight of a decision whose least recently used slot is "
                   "not a target.")
@click.option("--batch-size", type=click.IntRange(1), default=512, show_default=True,
              help="learned: decisions per gradient step.")
@click.option("--max-decisions", type=click.IntRange(1), default=1_500_000, show_default=True,
              help="learned: the DAgger pool keeps the most recent this many decisions (memory grows with it).")
@click.option("--check-lanes", type=click.IntRange(1), default=64, show_default=True,
              help="learned: held-out lanes (windows of a trace file's training part) of the quantisation check.")
@click.option("--variant-frac", type=Finite(0, 1), default=0.0, show_default=True,
              help="learned, Zipf lanes: the share of lanes drawn from the App. B defaults and one-at-a-time variants "
                   "(the rest from the randomised family).")
@click.option("--val-lanes", type=click.IntRange(0), default=0, show_default=True,
              help="learned, Zipf lanes: validation lanes per variant; each round's export is scored on them and "
                   "the best round is kept (0: the last).")
@click.option("--far-horizon", type=click.IntRange(0), default=0, show_default=True,
              help="learned: slots next used at least this many K requests ahead are targets too (0: the "
                   "teacher's choice only).")
@click.option("--teacher-horizon", type=click.IntRange(1), default=4, show_default=True,
              help="learned, --teacher latent_min: its horizon, in K requests.")
@click.option("--density-sizes", type=click.IntRange(1), default=1, show_default=True,
              help="learned, --teacher hit_density: average the tables estimated at K, 2K, ..., 2^(N-1) K.")
@click.option("--teacher-acts", is_flag=True, default=False,
              help="learned, --teacher hit_density or lfu_mru: the teacher, not Belady, acts in the DAgger "
                   "rollouts' expert share.")
@click.option("--dead-age", type=click.IntRange(0), default=0, show_default=True,
              help="learned, --teacher lfu_mru: blocks idle for at least this many K requests are evicted first "
                   "(0: none).")
def train(out, mode, K, bc_Ks, hidden, bc_rounds, bc_lanes, bc_epochs, bc_lr, bc_beta, bc_rank_coef, ppo_iterations,
          lanes, lr, ent_coef, critic_warmup, reward_baseline, init, init_sharpen, val_every, val_seeds, seed_start, torch_seed, M, alpha, W, shift, T, resume, log_dir, threads,
          nproc, device, quiet, policy, **learned):
    """Train a Page Controller: behaviour cloning on Belady (+ DAgger), then PPO.

    Under torchrun (or with --nproc) each rank trains its share of the lanes; rank 0 writes the
    checkpoint, log and plot, and --resume puts every rank back at the same checkpoint.

    --policy learned trains the registry's ``learned`` policy instead (gpupage.controller.slotnet).
    """
    from ..core.results import check_writable

    _refuse_foreign_options(click.get_current_context(), policy)
    check_writable(out)  # now, not when the trained network is written
    if policy == "learned":
        return _train_learned(out, K, bc_Ks, bc_rounds, bc_lanes, bc_epochs, bc_lr, bc_beta, bc_rank_coef, seed_start,
                              torch_seed, threads, quiet, **learned)
    if nproc != 1:
        from ..controller.trainlog import check_fresh

        check_fresh(out, resume, log_dir)  # once, before N ranks would each refuse
        return _launch_ranks(nproc, out, lanes, bc_lanes, bc_rounds, device)
    from ..core.limits import configure_threads

    configure_threads(threads)  # before torch loads its OpenMP runtime
    import torch
    from tqdm import tqdm

    from ..controller.imitation import BCConfig
    from ..controller.ppo import PPOConfig, train_controller
    from ..core.traces import ZipfParams
    from .options import resolve_device

    options = click.get_current_context().params
    if resume:
        _check_resume_options(resume, options)
    device = resolve_device(device)
    torch.set_num_threads(threads)
    from ..distributed.ddp import join, leave, under_torchrun

    ranks = None
    if under_torchrun():
        ranks, device = join(device)
        quiet = quiet or ranks.rank != 0
    zipf = dict(M=M, alpha=alpha, W=W, shift=shift, T=T)
    ZipfParams(**zipf)  # validate early
    Ks = tuple(parse_int_list(bc_Ks, "--bc-Ks", lo=1)) if bc_Ks else ()
    bc = None if bc_rounds < 0 else BCConfig(
        K=K, Ks=Ks, mode=mode, hidden=hidden, seed_start=seed_start, lanes=bc_lanes, dagger_rounds=bc_rounds,
        epochs=bc_epochs, lr=bc_lr, beta=bc_beta, rank_coef=bc_rank_coef, torch_seed=torch_seed, zipf=zipf,
        device=device)
    # PPO seeds follow the behaviour-cloning ones, so no trace is seen twice
    ppo_seed = seed_start + (bc_lanes * (bc_rounds + 1) * max(len(Ks), 1) if bc else 0)
    ppo = PPOConfig(K=K, mode=mode, hidden=hidden, lanes=lanes, iterations=ppo_iterations, lr=lr,
                    ent_coef=ent_coef, critic_warmup=critic_warmup, reward_baseline=reward_baseline,
                    seed_start=ppo_seed, torch_seed=torch_seed, zipf=zipf, device=device)
    start = None
    if init and not resume:  # a resumed run's checkpoint holds its weights
        if bc is not None:
            raise ValueError("--init starts PPO from a checkpoint: give --bc-rounds -1 (no behaviour cloning)")
        from ..controller.network import load_controller
        from ..controller.ppo import sharpen

        start, _ = load_controller(init)
        if start.config.mode != mode:
            raise ValueError(f"--init {init} is a {start.config.mode} controller, not {mode}")
        sharpen(start, init_sharpen)
    validate = None
    if val_every:
        from ..controller.validation import Validation

        validate = Validation(K, zipf, mode, parse_int_list(val_seeds, "--val-seeds"), device=device)
    bar = tqdm(total=(bc_rounds + 1 if bc else 0) + ppo_iterations, disable=quiet, file=sys.stderr,
               dynamic_ncols=True, unit="step")

    def progress(stage, done, total, info):
        bar.update(1)
        shown = {k: info[k] for k in ("agreement", "rollout_cr", "val_cr", "loss") if k in info}
        bar.set_postfix({"stage": stage, **{k: f"{v:.3f}" for k, v in shown.items()}})

    recorded = {k: v for k, v in options.items() if k not in RESUME_MAY_DIFFER}
    try:
        with bar:
            meta = train_controller(out, bc, ppo, resume=resume, log_dir=log_dir, progress=progress,
                                    meta={"command": shlex.join(["gpupage"] + sys.argv[1:]), "options": recorded},
                                    ranks=ranks, init=start, validate=validate, val_every=val_every)
    finally:
        leave()
    if ranks is not None and ranks.rank:
        return
    if meta.get("nothing_to_do"):
        click.echo(f"{resume} is already trained to these totals: nothing to do")
    else:
        click.echo(f"wrote {out} (trained in {meta['train_seconds']:.0f} s)")


# options that train only one of the two policies; the other's command refuses them rather than ignore them
CONTROLLER_ONLY = {"mode", "hidden", "ppo_iterations", "lanes", "lr", "ent_coef", "critic_warmup", "reward_baseline",
                   "init", "init_sharpen", "val_every", "val_seeds", "M", "alpha", "W", "shift", "T", "resume",
                   "log_dir", "nproc", "device"}


def _refuse_foreign_options(ctx, policy: str) -> None:
    """A one-line error for an option given on the command line that the chosen --policy would ignore."""
    from click.core import ParameterSource

    other = CONTROLLER_ONLY if policy == "learned" else LEARNED_ONLY
    for p in ctx.command.params:
        if p.name in other and ctx.get_parameter_source(p.name) not in (ParameterSource.DEFAULT, None):
            fix = "add --policy learned" if policy != "learned" else "it trains the torch controller (--policy controller)"
            raise click.UsageError(f"{p.opts[0]} does not apply to --policy {policy}: {fix}")


def _train_learned(out, K, bc_Ks, rounds, lanes, epochs, lr, beta, rank_coef, seed_start, torch_seed, threads, quiet,
                   trace_file, candidates, learned_hidden, **fields):
    """``train --policy learned``: :func:`gpupage.controller.slotnet.train_to`, the checkpoint written atomically.
    ``fields`` are the learned-only options named as the TrainConfig fields they set."""
    from ..core.limits import configure_threads

    configure_threads(threads)  # before torch loads its OpenMP runtime
    from ..controller import slotnet

    widths = tuple(parse_int_list(learned_hidden, "--learned-hidden", lo=1, hi=32))
    if len(widths) != 2:
        raise ValueError(f"--learned-hidden takes two widths (H1,H2), got {learned_hidden!r}")
    cfg = slotnet.TrainConfig(
        seed_start=seed_start, lanes=lanes, rounds=max(rounds, 0), beta=beta, epochs=epochs, lr=lr, rank_coef=rank_coef,
        hidden=widths,
        Ks=tuple(parse_int_list(bc_Ks, "--bc-Ks", lo=1)) if bc_Ks else (K,), torch_seed=torch_seed % 2**63,
        threads=threads, trace_file=trace_file or "", candidates=candidates or 0, **fields)
    log = None if quiet else (lambda r, info: click.echo(json.dumps(info), err=True))
    # an interrupted run writes its finished rounds' network before the error says so
    _, report = slotnet.train_to(out, cfg, shlex.join(["gpupage"] + sys.argv[1:]), log=log)
    click.echo(f"wrote {out}: {json.dumps(report['check'])}")


LEARNED_ONLY = {p.name for p in train.params if p.expose_value} - set(inspect.signature(train.callback).parameters)
"""The options that land in ``train``'s ``**learned``: the learned trainer's alone."""


# what a resumed run may change; every other option must be the checkpoint's (the ranks split the
# same global batch, so their number may change too)
RESUME_MAY_DIFFER = {"out", "resume", "init", "init_sharpen", "ppo_iterations", "bc_rounds", "threads", "quiet", "device", "log_dir", "nproc"}


def _launch_ranks(nproc: int, out: str, lanes: int, bc_lanes: int, bc_rounds: int, device: str) -> None:
    """``gpupage train --nproc N ...``: the same command as N torchrun ranks on this machine."""
    from ..distributed.ddp import launch, under_torchrun, without_option

    if nproc < 1:
        raise click.BadParameter(f"--nproc must be >= 1, got {nproc}")
    if under_torchrun():
        raise click.UsageError("--nproc under torchrun: give torchrun --nproc_per_node instead")
    for name, n in (("--lanes", lanes), ("--bc-lanes", bc_lanes if bc_rounds >= 0 else nproc)):
        if n % nproc:
            raise click.BadParameter(f"{name} {n} does not split evenly over --nproc {nproc} ranks")
    if device != "cpu":
        import torch

        gpus = torch.cuda.device_count()
        if (device == "cuda" or gpus) and gpus < nproc:
            raise click.UsageError(f"--nproc {nproc}: only {gpus} GPUs are visible (one rank a GPU; "
                                   "--device cpu trains on the CPU)")
    launch(nproc, without_option(sys.argv[1:], "--nproc"), f"--resume {out} continues from its last checkpoint")


def _check_resume_options(path, options: dict) -> None:
    """A one-line error naming the first option that differs from the run recorded in ``path``."""
    from ..controller.network import load_checkpoint

    meta = load_checkpoint(path)["meta"]
    recorded = meta.get("options")
    if recorded is None:  # written before options were recorded: read them back from its command
        args = shlex.split(meta.get("command", ""))[2:]
        if "--resume" in args:
            i = args.index("--resume")
            del args[i:i + 2]
        try:
            recorded = train.make_context("train", args).params
        except (click.ClickException, ValueError):
            raise ValueError(f"--resume: {path} records no train command to compare options with") from None
    norm = lambda k, v: tuple(parse_int_list(v)) if k == "bc_Ks" and v else v  # noqa: E731
    flags = {p.name: p.opts[0] for p in train.params}
    for name, value in options.items():
        if name in RESUME_MAY_DIFFER or name not in flags:
            continue
        if norm(name, value) != norm(name, recorded.get(name, value)):
            raise ValueError(f"--resume: {flags[name]} {value} differs from the checkpoint's {recorded.get(name)} "
                             f"(only {', '.join(flags[n] for n in sorted(RESUME_MAY_DIFFER))} may change)")


def _load_traces(trace_file, trace_format, seeds, M, alpha, W, shift, T):
    """(traces [B, T], latent or None, description)."""
    import torch

    if trace_file:
        from ..core.io import read_trace

        ft = read_trace(trace_file, trace_format)
        return torch.from_numpy(ft.ids).unsqueeze(0), None, f"{trace_file} ({ft.format}, {ft.requests} requests)"
    from ..core.traces import ZipfParams, zipf_traces

    tr, latent = zipf_traces(ZipfParams(M=M, alpha=alpha, W=W, shift=shift, T=T), seed=seeds, return_latent=True)
    return tr, latent, f"Zipf M={M} alpha={alpha} W={W} shift={shift} T={T}, {len(seeds)} seeds"


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="Controller checkpoint (.pt).")
@k_option(default="8", help="Cache size(s) K_b, e.g. 8 or 4,8,16.")
@seeds_option(default="1000-1019")
@zipf_options
@click.option("--trace-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Evaluate on a trace file instead of the Zipf family (black-box controllers only).")
@trace_format_option("--format", "--trace-format", "trace_format")
@click.option("--policies", default=None, help="Baselines to compare [default: every online registry policy + belady; "
                                                  "for a learned-policy checkpoint the ten standard baselines + belady].")
@click.option("--candidates", type=CANDIDATES, default=None,
              help="Learned-policy checkpoint: score only the C least recently accessed blocks (default: all).")
@warmup_option
@device_option
@json_option
@prefetch_eval_options
@resource_options
def evaluate(checkpoint, K, seeds, M, alpha, W, shift, T, trace_file, trace_format, policies, candidates, warmup, device,
             as_json, **prefetch):
    """Compare a trained controller (greedy) with the heuristics: fault rate, competitive ratio, Prop. 6.

    A checkpoint of the registry's ``learned`` policy runs that policy (``controller``) instead, and a
    prefetch controller's checkpoint (issue 13) gives its cost table."""
    from ..controller.prefetch_train import FORMAT as PREFETCH_FORMAT
    from ..core.results import checkpoint_format
    from ..zoo.learned import FORMAT as LEARNED_FORMAT

    fmt = checkpoint_format(checkpoint)  # the file is read once to choose its evaluation
    if fmt == PREFETCH_FORMAT:  # issue 13's prefetch controller: its own table
        from ..core.traces import ZipfParams

        given = {"--trace-file": trace_file, "--policies": policies, "--candidates": candidates,
                 "--warmup": warmup or None}  # refused, not silently ignored: its table is Zipf lanes, every policy
        bad = [k for k, v in given.items() if v is not None]
        if bad:
            raise ValueError(f"{', '.join(bad)} {'does' if len(bad) == 1 else 'do'} not apply to a prefetch controller "
                             "checkpoint (it is evaluated on Zipf lanes against its own policies)")

        return evaluate_prefetch_checkpoint(checkpoint, K, seeds, ZipfParams(M=M, alpha=alpha, W=W, shift=shift, T=T),
                                            as_json, **prefetch)
    if any(v is not None for v in prefetch.values()):
        raise ValueError("--lookahead, --hint-noise and --lambda-* apply to prefetch controller checkpoints only")
    from ..controller.network import load_controller
    from ..controller.evaluate import default_policies, evaluate as run
    from ..core.policies import parse_policies
    from .options import resolve_device

    device = resolve_device(device)
    if fmt == LEARNED_FORMAT:
        return _evaluate_learned(checkpoint, K, seeds, (M, alpha, W, shift, T), trace_file, trace_format, policies,
                                 candidates, warmup, device, as_json)
    if candidates is not None:
        raise ValueError(f"--candidates applies to learned-policy checkpoints; {checkpoint} is a torch controller")
    model, meta = load_controller(checkpoint)
    names = [p.name for p in parse_policies(policies)] if policies is not None else default_policies()
    trained = _trained_ks(meta)
    for k in K:
        if trained and k not in trained:  # stderr: --json keeps stdout to the JSON
            click.echo(f"Warning: {checkpoint} was trained at K = {', '.join(map(str, trained))}, "
                       f"evaluated at K = {k}", err=True)
    tr, latent, desc = _load_traces(trace_file, trace_format, seeds, M, alpha, W, shift, T)
    if model.config.mode == "whitebox" and latent is None:
        raise ValueError("a white-box controller needs Zipf traces (their latent state); drop --trace-file")
    results = {}
    for k in K:
        res = run(model, tr, k, latent, policies=names, seed=seeds[0], device=device, warmup=warmup)
        if not res["controller"]["prop6"]["holds"]:
            raise RuntimeError(f"Prop. 6's bound failed at K={k}")
        results[k] = res
    if as_json:
        out = results[K[0]] if len(K) == 1 else {str(k): v for k, v in results.items()}
        click.echo(json.dumps(out))
        return
    click.echo(f"{checkpoint} ({model.config.mode}, {model.n_params()} parameters) on {desc}")
    for k, res in results.items():
        click.echo(f"K={k}")
        click.echo(f"  {'policy':<20} {'fault rate':>16} {'competitive ratio':>20} {'non-compulsory faults':>22}")
        for name, r in res.items():
            fr, cr, nc = r["fault_rate"], r["competitive_ratio"], r["non_compulsory_faults"]
            click.echo(f"  {name:<20} {fr['mean']:>8.4f} ± {fr['sd']:<6.4f} {cr['mean']:>11.3f} ± {cr['sd']:<6.3f} "
                       f"{nc['mean']:>14.1f}")
        p6 = res["controller"]["prop6"]
        click.echo(f"  Prop. 6: p={p6['p_mean']:.3f} D_f=1 T={p6['T_total']} F_learned={p6['F_learned_total']} "
                   f"<= F_opt + (1-p) D_f T = {p6['bound_total']} (F_opt={p6['F_opt_total']}): "
                   f"{'holds' if p6['holds'] else 'FAILS'} on every trace")


def _evaluate_learned(checkpoint, K, seeds, zipf, trace_file, trace_format, policies, candidates, warmup, device,
                      as_json):
    """``evaluate`` for a learned-policy checkpoint: the registry policy against the baselines."""
    from ..controller.evaluate import evaluate_learned
    from ..core.policies import parse_policies

    names = [p.name for p in parse_policies(policies)] if policies is not None else None
    tr, _, desc = _load_traces(trace_file, trace_format, seeds, *zipf)
    results = {k: evaluate_learned(checkpoint, tr, k, candidates, names, seed=seeds[0], warmup=warmup, device=device)
               for k in K}
    if as_json:
        click.echo(json.dumps(results[K[0]] if len(K) == 1 else {str(k): v for k, v in results.items()}))
        return
    click.echo(f"{checkpoint} (learned policy{f', candidates={candidates}' if candidates else ''}) on {desc}")
    for k, res in results.items():
        click.echo(f"K={k}")
        gap = res.pop("gap_to_best_baseline", None)
        for name, r in res.items():
            f, nc = r["faults"], r["non_compulsory_faults"]
            cells = (f"{f:>10} {nc:>10}" if isinstance(f, int) else
                     f"{f['mean']:>10.1f} {nc['mean']:>10.1f} ± {nc['sd']:<8.1f} CR {r['competitive_ratio']['mean']:.3f}")
            click.echo(f"  {name:<12} {cells}")
        if gap:
            click.echo(f"  controller - {gap['baseline']}: {gap['mean']:+.1f} ± {gap['se']:.1f} faults (paired, s.e.)")


def _trained_ks(meta: dict) -> list[int]:
    """The cache sizes a checkpoint's behaviour cloning and PPO ran at (empty when it does not say)."""
    bc, ppo = meta.get("bc") or {}, meta.get("ppo") or {}
    ks = list(bc.get("Ks") or ([bc["K"]] if "K" in bc else [])) + ([ppo["K"]] if "K" in ppo else [])
    return sorted({int(k) for k in ks})


COMMANDS = [train, evaluate]
