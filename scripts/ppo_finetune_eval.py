"""Did a PPO fine-tune help?  Paired per seed, on seeds never trained or tuned on.

For the controller PPO started from (``--before``) and the one it shipped (``--after``): the greedy
competitive ratio per seed, its paired difference (mean ± s.e., and on how many seeds ``after`` is
better/worse), each against the best baseline on those seeds, and how often the two greedy
policies decide differently on the states ``before`` visits (the greedy change rate).

    python scripts/ppo_finetune_eval.py --before checkpoints/pagecontroller_k8.pt \\
        --after checkpoints/ppo_finetune_k8.pt [--K 8] [--seeds 1000-1039] [--json]
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from gpupage.cli.options import parse_int_list
from gpupage.controller import env as E
from gpupage.controller.evaluate import controller_rollout
from gpupage.controller.features import observe
from gpupage.controller.network import load_controller
from gpupage.controller.validation import BASELINES
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces


def paired(a, b) -> dict:
    d = (a - b).double()
    return {"mean": float(d.mean()), "se": float(d.std()) / math.sqrt(d.numel()),
            "better": int((d < 0).sum()), "worse": int((d > 0).sum())}


@torch.no_grad()
def greedy_change_rate(before, after, traces, K: int) -> float:
    """Share of ``before``'s greedy decisions (on its own trajectory) that ``after`` would take differently."""
    obs, st = E.reset_traces(E.EnvParams(K=K, mode=before.config.mode), traces)
    differ = total = 0
    while not bool(st.done.all()):
        a, b = before.act(obs, greedy=True), after.act(obs, greedy=True)
        live = ~st.done
        differ += int((a != b)[live].sum())
        total += int(live.sum())
        E.step_inplace(st, a)
        obs = observe(st, before.config.mode)
    return differ / max(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--seeds", default="1000-1039")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    seeds = list(parse_int_list(args.seeds, "--seeds"))
    torch.set_num_threads(1)
    before, _ = load_controller(args.before)
    after, _ = load_controller(args.after)
    traces = zipf_traces(ZipfParams(), seed=seeds)
    opt = simulate(traces, "belady", args.K).faults.double()
    cr = {name: simulate(traces, name, args.K, seed=seeds[0]).faults.double() / opt for name in BASELINES}
    best = min(cr, key=lambda n: float(cr[n].mean()))
    for name, model in (("before", before), ("after", after)):
        cr[name] = controller_rollout(model, traces, args.K)[0].double() / opt
    out = {"seeds": args.seeds, "K": args.K, "best_baseline": best,
           "cr": {n: float(cr[n].mean()) for n in ("before", "after", best)},
           "after_minus_before": paired(cr["after"], cr["before"]),
           "before_minus_best": paired(cr["before"], cr[best]), "after_minus_best": paired(cr["after"], cr[best]),
           "greedy_change_rate": greedy_change_rate(before, after, traces, args.K)}
    if args.json:
        print(json.dumps(out))
        return
    print(f"K={args.K}, seeds {args.seeds}: CR before {out['cr']['before']:.4f}, after {out['cr']['after']:.4f}, "
          f"{best} {out['cr'][best]:.4f}")
    for key in ("after_minus_before", "before_minus_best", "after_minus_best"):
        p = out[key]
        print(f"  {key:<20} {p['mean']:+.4f} ± {p['se']:.4f} (better on {p['better']}, worse on {p['worse']} seeds)")
    print(f"  greedy decisions that differ on before's trajectory: {out['greedy_change_rate']:.2%}")


if __name__ == "__main__":
    main()
