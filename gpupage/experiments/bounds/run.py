"""The driver of ``gpupage bounds``: measure every section, then write bounds.json, report.md and the
PNG plots into one directory."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict

import numpy as np

from ...core import limits
from ...core.results import claim_dir, write_text_atomic
from .config import BoundsConfig
from .corollary1 import corollary1
from .eta import eta_sweep
from .instance import instance_ratio
from .lemma1 import lemma1a, lemma1b
from .lemma2 import lemma2
from .plots import make_plots
from .prop6 import prop6
from .report import render_report
from .theorem3 import theorem3
from .theorem4 import theorem4

__all__ = ["BoundsConfig", "SECTIONS", "progress_steps", "run_bounds"]

SECTIONS = (lemma1a, lemma1b, lemma2, theorem3, theorem4, corollary1, instance_ratio, prop6)


def progress_steps(cfg: BoundsConfig) -> int:
    """Number of progress ticks a full run makes (for a progress bar)."""
    return (len(cfg.localities) + 5 + 1 + 1 + 1 + len(cfg.sigmas) + len([w for w in (8, 16, 32) if w <= cfg.M])
            + len([k for k in cfg.Ks if k <= 16] or cfg.Ks) + 1 + 1)


OUTPUTS = ("bounds.json", "config.json", "report.md", "lemma1a_cascade.png", "lemma1b_noise.png", "lemma2_hints.png",
           "theorem3_cyclic.png", "theorem4_closed_loop.png", "corollary1_thrashing.png", "instance_ratio.png",
           "eta_ratio.png")
"""Every file :func:`run_bounds` may write into its directory."""


def run_bounds(cfg: BoundsConfig, out_dir: str, progress=None, overwrite: bool = False) -> list[dict]:
    """Measure every section, write bounds.json, report.md and the PNGs (:data:`OUTPUTS`) into ``out_dir``; return
    the entries.  A directory that holds any of them already is refused unless ``overwrite``."""
    if cfg.checkpoint and not os.path.isfile(cfg.checkpoint):
        raise OSError(f"no checkpoint at {cfg.checkpoint}")
    claim_dir(out_dir, OUTPUTS, overwrite)
    # the largest section holds a few copies of its traces, hits, victims and next uses at once
    limits.require(64 * cfg.lanes * max(cfg.T, *cfg.cyclic_T), f"bounds over {cfg.lanes} lanes x {cfg.T} requests")
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for fn in SECTIONS:
        entries.append(fn(cfg, progress))
        _write_json(entries, cfg, out_dir)  # an interrupted run keeps finished sections
    etas = eta_sweep(cfg, progress)
    figures = make_plots(entries, etas, cfg, out_dir)
    _write_json(entries, cfg, out_dir)
    write_text_atomic(os.path.join(out_dir, "report.md"), render_report(entries, etas, cfg, figures))
    return entries


def _write_json(entries, cfg, out_dir):
    write_text_atomic(os.path.join(out_dir, "bounds.json"), json.dumps(_jsonable(entries), indent=1))
    write_text_atomic(os.path.join(out_dir, "config.json"), json.dumps(_jsonable(asdict(cfg)), indent=1))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
