"""The learning-augmented baselines against prediction noise (eta, and predictions replaced at random)."""

from __future__ import annotations

from ...core.policies import POLICIES
from ...core.traces import zipf_traces
from .config import BoundsConfig, checkpoint_path, cpu_faults, tick


def eta_sweep(cfg: BoundsConfig, progress=None):
    """Ratio F / F_opt of the prediction-based policies against the noise scale eta (replace = 0) and the
    share of predictions replaced at random (eta = 0), next to LRU and, when a checkpoint exists, the
    controller (neither reads predictions, so both are flat).  None when the policies are not registered."""
    names = [n for n in ("blind_oracle", "predictive_marker") if n in POLICIES]
    if not names:
        return None
    tr = zipf_traces(cfg.zipf(), cfg.seeds(), None)
    opt = cpu_faults(tr, "belady", cfg.K, cfg.seeds())
    flat = {"lru": cpu_faults(tr, "lru", cfg.K, cfg.seeds())}
    controller = _controller_faults(cfg, tr)
    if controller is not None:
        flat["controller"] = controller
    settings = [(e, 0.0) for e in cfg.etas] + [(0.0, r) for r in cfg.replaces if r > 0]
    rows = [dict(policy=name, eta=e, replace=r, ratio=float((f / opt).mean()))
            for name, f in flat.items() for e, r in settings]
    for name in names:
        for e, r in settings:
            try:
                f = cpu_faults(tr, name, cfg.K, cfg.seeds(), options={"eta": e, "replace": r})
            except (TypeError, KeyError, ImportError, AttributeError):
                return None
            rows.append(dict(policy=name, eta=e, replace=r, ratio=float((f / opt).mean())))
    tick(progress)
    return rows


def _controller_faults(cfg: BoundsConfig, traces):
    """The checkpointed controller's faults on ``traces`` (at its K_b = cfg.K), else None."""
    path = checkpoint_path(cfg)
    if path is None:
        return None
    try:
        from ...controller.evaluate import controller_rollout
        from ...controller.network import load_controller

        model, meta = load_controller(path)
        if int(meta.get("K", cfg.K)) != cfg.K:
            return None
        _, latent = zipf_traces(cfg.zipf(), cfg.seeds(), None, return_latent=True)
        return controller_rollout(model, traces, cfg.K, latent)[0].numpy()
    except (ImportError, OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
