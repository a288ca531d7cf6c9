"""Rollout collection speed of the paging environment, per backend present.

Reports decisions/s (controller forward + features + env step) and simulated
requests/s, for the full rollout and for the env step alone, next to the
reference measured in the same run: ``gpupage.simulate`` running LRU over the
same traces on the same backend (requests/s), so the ratio shows what the
decision loop costs over plain simulation.  Then the prefetch env (issue 13) on
each backend present (numba on the CPU, the Triton kernel on CUDA) with an
untrained prefetch controller choosing prefetches and victims on the same traces
(hints eps = 0.1, L = 4), against the demand env's rollout on the same backend.
With gymnasium installed it also runs
the gymnasium adapter (``gpupage.controller.gym``) against the raw env doing the
same work (evict slot 0, features every decision), as decisions/s (best of
``--gym-repeats``) and their ratio (of the bests, and the median of back-to-back pairs).

    python scripts/bench_rollout.py [--lanes 64,256] [--K 8] [--T 5000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gpupage.controller import env as E
from gpupage.controller.features import observe
from gpupage.controller.network import ControllerConfig, PageController
from gpupage.controller.prefetch_env import PrefetchEnv, n_features, prefetch_features
from gpupage.controller.prefetch_train import PrefetchNet
from gpupage.core.prefetch import make_hints
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def rollout(model, traces, K, device, with_model=True):
    """Greedy episode over every lane; returns (decisions, requests, seconds)."""
    params = E.EnvParams(K=K, device=device)
    _sync(device)
    t0 = time.perf_counter()
    obs, st = E.reset_traces(params, traces)
    step = 0
    while step % E.DONE_CHECK_EVERY or not bool(st.done.all()):  # the loop's only host sync
        a = model.act(obs) if with_model else torch.zeros(st.batch, dtype=torch.int64, device=st.t.device)
        E.step_inplace(st, a)
        if with_model:
            obs = observe(st, "blackbox")
        step += 1
    _sync(device)
    seconds = time.perf_counter() - t0
    return int(st.decisions.sum()), int((st.traces >= 0).sum()), seconds


@torch.no_grad()
def raw_episode(traces, K, device):
    """One episode a lane through the raw env (step + features), evicting slot 0: (faults, seconds, decisions)."""
    params = E.EnvParams(K=K, device=device)
    _sync(device)
    t0 = time.perf_counter()
    obs, st = E.reset_traces(params, traces)
    zeros = torch.zeros(st.batch, dtype=torch.int64, device=st.t.device)
    step = 0
    while step % E.DONE_CHECK_EVERY or not bool(st.done.all()):
        E.step_inplace(st, zeros)
        obs = observe(st, "blackbox")
        step += 1
    _sync(device)
    return st.faults.tolist(), time.perf_counter() - t0, int(st.decisions.sum())


def gym_episode(traces, K, device):
    """The same through the gymnasium adapter: (faults, seconds)."""
    from gpupage.controller.gym import PagingVectorEnv

    # Disabled autoreset: lane i plays row i once, as the raw loop does
    env = PagingVectorEnv(traces.shape[0], K, traces=traces, device=device, autoreset_mode="Disabled")
    t0 = time.perf_counter()
    env.reset(seed=0)
    act, term = np.zeros(env.num_envs, dtype=np.int64), None
    while term is None or not term.all():
        _, _, term, _, info = env.step(act)
    return info["faults"].tolist(), time.perf_counter() - t0


def _t(a):
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(a)


@torch.no_grad()
def prefetch_rollout(model, traces, hints, K, device):
    """Greedy prefetch-env episode over every lane on ``device``'s backend (numba on the CPU, the Triton
    kernel on CUDA, where done is read every DONE_CHECK_EVERY steps); returns (decisions, requests, seconds)."""
    _sync(device)
    t0 = time.perf_counter()
    env = PrefetchEnv(traces.to(device), hints.to(device), 4, K, 0.3, backend="cpu" if device == "cpu" else "triton")
    decisions = torch.zeros((), dtype=torch.int64, device=device)
    step = 0
    while step % E.DONE_CHECK_EVERY or not bool(_t(env.done).all()):
        decisions += _t(env.pending).sum()
        logit, scores, _ = model(*prefetch_features(_t(env.obs_global), _t(env.obs_slots), 0.3, K))
        env.step((logit > 0).long(), scores.argmax(-1))
        step += 1
    _sync(device)
    return int(decisions), int((traces >= 0).sum()), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", default="64,256")
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--T", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--gym-repeats", type=int, default=5, help="pairs of raw env and adapter episodes")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (as gpupage train uses)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    torch.manual_seed(0)  # the same untrained controller, hence the same decisions, every run
    model = PageController(ControllerConfig()).eval()
    print(f"# torch threads {torch.get_num_threads()}; wall-clock on a shared machine: noisy")
    gym_rows = []
    print("backend lanes   decisions/s  requests/s(rollout)  requests/s(env only)  requests/s(simulate lru)  "
          "rollout/simulate")
    demand = {}
    for device in devices:
        m = model.to(device)
        for B in [int(x) for x in args.lanes.split(",")]:
            traces = zipf_traces(ZipfParams(T=args.T), seed=list(range(B))).to(device)
            rollout(m, traces[:2], args.K, device)  # compile / warm up
            best = {}
            for _ in range(args.repeats):
                for key, wm in (("full", True), ("env", False)):
                    d, r, s = rollout(m, traces, args.K, device, wm)
                    if key not in best or s < best[key][2]:
                        best[key] = (d, r, s)
                _sync(device)
                t0 = time.perf_counter()
                simulate(traces, "lru", args.K)
                _sync(device)
                sim = time.perf_counter() - t0
                best["sim"] = min(best.get("sim", sim), sim)
            d, r, s = best["full"]
            _, re, se = best["env"]
            sim_rps = r / best["sim"]
            print(f"{device:7s} {B:5d} {d / s:13.0f} {r / s:20.0f} {re / se:21.0f} {sim_rps:25.0f} "
                  f"{r / s / sim_rps:17.4f}")
            gym_rows.append((device, B, traces))
            demand[device, B] = d / s
    print("\nprefetch env  backend lanes  decisions/s  requests/s  decisions/s over the demand env's (same backend)")
    for device in devices:
        pnet = PrefetchNet(*n_features("blackbox")).eval().to(device)
        for B in [int(x) for x in args.lanes.split(",")]:
            traces = zipf_traces(ZipfParams(T=args.T), seed=list(range(B)))
            hints = make_hints(traces, 4, 0.1, 64, seed=list(range(B)))
            prefetch_rollout(pnet, traces[:2], hints[:2], args.K, device)  # compile / warm up
            d, r, s = min((prefetch_rollout(pnet, traces, hints, args.K, device) for _ in range(args.repeats)),
                          key=lambda x: x[2])
            name = "numba" if device == "cpu" else "triton"
            print(f"{'':14s}{name:7s} {B:5d} {d / s:12.0f} {r / s:11.0f} {d / s / demand[device, B]:12.2f}")
    if devices == ["cpu"]:
        print("# no GPU: the prefetch env's triton backend (kernels.prefetch_env) not measured")
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        print("# gymnasium not installed (pip install 'gpupage[gym]'): adapter not measured")
        return
    print("backend lanes   decisions/s(raw env+features)  decisions/s(gymnasium adapter)  adapter/raw  "
          "median adapter/raw")
    for device, B, traces in gym_rows:
        raw, adapter, ratios = [], [], []
        for rep in range(args.gym_repeats):  # back to back, alternating which goes first: the load drifts
            pair = [raw_episode, gym_episode] if rep % 2 == 0 else [gym_episode, raw_episode]
            out = {f: f(traces, args.K, device) for f in pair}
            if out[raw_episode][0] != out[gym_episode][0]:
                raise RuntimeError("the adapter and the raw env disagree")
            raw.append(out[raw_episode][1])
            adapter.append(out[gym_episode][1])
            ratios.append(raw[-1] / adapter[-1])
            d = out[raw_episode][2]
        print(f"{device:7s} {B:5d} {d / min(raw):30.0f} {d / min(adapter):31.0f} {min(raw) / min(adapter):12.4f} "
              f"{float(np.median(ratios)):20.4f}")


if __name__ == "__main__":
    main()
