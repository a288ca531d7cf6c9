"""How much signal is in PPO's policy gradient after behaviour cloning?

One sampled rollout of a controller (whole episodes, as a PPO iteration collects them) is scored
twice from the same trajectories: with the plain reward (-1 per fault) and with the reward relative
to a baseline policy's faults on the same trace (``--reward-baseline``).  For each, advantages are
the discounted returns normalised over the batch (no critic: a cloned controller has none yet), the
samples are split into ``--minibatches`` random minibatches, and each minibatch's policy gradient
g_j = grad of -mean(A log pi(a)) is taken.  Reported: the signal-to-noise ratio ||mean g|| /
rms_j ||g_j - mean g|| (below 1, a minibatch step is mostly noise), the mean pairwise cosine of the
g_j, and the sampled policy's entropy and rollout CR beside the greedy one's.

    python scripts/ppo_signal.py --checkpoint checkpoints/pagecontroller_k8.pt [--lanes 32] [--minibatches 16] [--sharpen 4]
"""

from __future__ import annotations

import argparse
import json

import torch

from gpupage.controller.evaluate import controller_rollout
from gpupage.controller.features import Obs
from gpupage.controller.network import load_controller
from gpupage.controller.ppo import PPO, PPOConfig, gae, sharpen
from gpupage.core.simulate import simulate


def minibatch_gradients(model, buf, adv, minibatches: int, gen) -> torch.Tensor:
    """[minibatches, parameters]: each random minibatch's gradient of -mean(A log pi(a))."""
    idx = torch.nonzero(buf["valid"].reshape(-1)).squeeze(1)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])[idx]  # noqa: E731
    slots, glob, mask, actions = (flat(buf[k]) for k in ("slots", "glob", "mask", "actions"))
    a = flat(adv)
    a = (a - a.mean()) / (a.std() + 1e-8)
    perm = torch.randperm(idx.numel(), generator=gen)
    grads = []
    for j in perm.chunk(minibatches):
        model.zero_grad()
        logits, _ = model(Obs(slots[j], glob[j], mask[j]))
        logp = torch.log_softmax(logits, 1).gather(1, actions[j][:, None]).squeeze(1)
        (-(a[j] * logp).mean()).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]))
    return torch.stack(grads)


def snr(g: torch.Tensor) -> dict:
    mean = g.mean(0)
    noise = (g - mean).norm(dim=1).pow(2).mean().sqrt()
    unit = g / g.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    m = g.shape[0]
    return {"snr": float(mean.norm() / noise), "mean_cosine": float((cos.sum() - m) / (m * (m - 1)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--lanes", type=int, default=32)
    ap.add_argument("--minibatches", type=int, default=16)
    ap.add_argument("--reward-baseline", default="adaptive")
    ap.add_argument("--seed-start", type=int, default=15000)
    ap.add_argument("--sharpen", type=float, default=1.0, help="as train --init-sharpen")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {}
    for name, base in (("plain", None), (f"vs_{args.reward_baseline}", args.reward_baseline)):
        model = sharpen(load_controller(args.checkpoint)[0], args.sharpen)
        runner = PPO(PPOConfig(K=args.K, lanes=args.lanes, seed_start=args.seed_start, reward_baseline=base), model)
        buf = runner.collect()  # the same seeds and generator: the same trajectories for both rewards
        requests, faults, opt = buf["rollout"].tolist()
        adv, _ = gae(buf["rewards"], torch.zeros_like(buf["rewards"]), buf["discounts"], buf["next_value"], 1.0)
        with torch.no_grad():
            logits, _ = model(Obs(buf["slots"][0], buf["glob"][0], buf["mask"][0]))
            p = torch.softmax(logits, 1)
            entropy = float(-(p * torch.log(p.clamp(min=1e-30))).sum(1).mean())
        g = minibatch_gradients(model, buf, adv, args.minibatches, torch.Generator().manual_seed(0))
        out[name] = {"samples": int(buf["valid"].sum()), "rollout_cr": faults / opt, **snr(g),
                     "entropy_first_decisions": entropy}
    model, _ = load_controller(args.checkpoint)
    tr = runner.state.traces
    out["greedy_cr_same_traces"] = float(controller_rollout(model, tr, args.K)[0].sum()
                                         / simulate(tr, "belady", args.K).faults.sum())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
