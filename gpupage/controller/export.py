"""Choosing a ``learned`` checkpoint's integer export on validation, without retraining.

The export (:func:`gpupage.controller.slotnet.quantise`) maps each hidden layer's float activations onto
the specification's 256 levels.  How it does so moves the integer policy's faults by as much as training runs
differ: on K = 8 validation lanes one float network lost 0.08 points of excess over the best baseline in export,
another 0.39.  :func:`search_export` tries :data:`VARIANTS` (flooring or rounding; each hidden layer's scale 1, 2
or 4 times finer than the calibration peak's, the top saturating) and keeps the one that validates best;
:func:`reexport` does it for a checkpoint's float weights and writes a new checkpoint.

``python -m gpupage.controller.export SRC --out OUT [--lanes 128] [--val-lanes 128]``
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import torch

from ..zoo import learned as L
from ..zoo.learned_dagger import collect
from .slotnet import SlotNet, TrainConfig, Validation, lane_batch, quantisation_check, quantise

VARIANTS = tuple({"rounding": r, "finer": (d1, d2)} for r in (False, True)
                 for d1, d2 in itertools.product(range(3), range(3)))
"""The exports tried, the plain one (flooring, the calibration peak at 255) first: ties keep the earlier."""


def search_export(model: SlotNet, calib: torch.Tensor, validation) -> tuple[L.LearnedNet, dict]:
    """(network, record): the export of ``model`` among :data:`VARIANTS` with the lowest ``validation(net)``
    (e.g. :class:`gpupage.controller.slotnet.Validation`); the record holds the choice and every variant's score."""
    scores = []
    best = None
    for v in VARIANTS:
        net = quantise(model, calib, rounding=v["rounding"], finer=v["finer"])
        score = float(validation(net))
        scores.append({**v, "finer": list(v["finer"]), "val_excess_pct": score})
        if best is None or score < best[0]:
            best = (score, net, v)
    return best[1], {"rounding": best[2]["rounding"], "finer": list(best[2]["finer"]), "val_excess_pct": best[0],
                     "variants": scores}


def reexport(src, out, lanes: int = 128, val_lanes: int = 128) -> tuple[L.LearnedNet, dict]:
    """Re-export the float weights of the checkpoint ``src`` by :func:`search_export` and write the result to
    ``out`` (never over an existing file); returns (network, the record kept in its ``meta["export"]``).

    Calibration: every decision of ``src``'s own integer network on ``lanes`` lanes of its training family,
    seeds from its ``seed_start``.  Validation: :class:`Validation` over its trained K, ``val_lanes`` lanes a
    variant from its ``val_seed`` (the lanes that chose its round, if it validated)."""
    from ..core.results import atomic_path, check_writable

    if lanes < 1 or val_lanes < 1:
        raise ValueError(f"lanes and val_lanes must be >= 1, got {lanes}, {val_lanes}")
    if os.path.exists(out):
        raise ValueError(f"{out} exists; remove it or choose another --out")
    check_writable(out)
    net = L.load_network(src)  # refuses anything but a learned-policy checkpoint, in one line
    raw = torch.load(src, map_location="cpu", weights_only=True)
    meta = raw.get("meta", {})
    cfg = meta.get("config", {})
    if raw.get("spec_version") != L.SPEC_VERSION:
        raise ValueError(f"{src} is a version-{raw.get('spec_version')} network; re-export needs version {L.SPEC_VERSION}")
    if "float_state_dict" not in meta:
        raise ValueError(f"{src} holds no float weights to re-export")
    if cfg.get("trace_file"):
        raise ValueError(f"{src} was trained on a trace file; re-export validates on App. B lanes")
    model = SlotNet(tuple(meta["hidden"]))
    model.load_state_dict(meta["float_state_dict"])
    defaults = TrainConfig()  # older checkpoints lack some fields
    get = lambda name: cfg.get(name, getattr(defaults, name))  # noqa: E731
    Ks = tuple(get("Ks"))
    seeds = np.arange(lanes) + get("seed_start")
    traces, K = lane_batch(seeds, Ks, get("variant_frac"))
    calib = torch.from_numpy(collect(traces, K, net, 0.0, seeds)[0].reshape(-1, L.N_IN))
    best, record = search_export(model, calib, Validation(Ks, val_lanes, get("val_seed")))
    # the network that was calibrated on, so that the export can be checked from this file alone; the training
    # report's "check" is the replaced export's, so the chosen one is checked on the same held-out lanes too
    record.update(source=str(src), source_network=L.checkpoint_dict(net), calibration_lanes=lanes,
                  val_lanes=val_lanes, val_seed=get("val_seed"),
                  check=quantisation_check(model, best, TrainConfig(Ks=Ks, check_lanes=get("check_lanes"),
                                                                    check_seed=get("check_seed"))))
    with atomic_path(out) as tmp:
        torch.save(L.checkpoint_dict(best, {**meta, "export": record}), tmp)
    return best, record


def main(argv=None) -> int:
    import argparse
    import json
    import sys

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, without the long usage
            self.exit(2, f"{self.prog}: error: {message}\n")

    ap = Parser(prog="python -m gpupage.controller.export",
                description="Re-export a learned checkpoint's float weights: the export that validates best.")
    ap.add_argument("src", help="a learned-policy checkpoint with float weights (trained on App. B lanes)")
    ap.add_argument("--out", required=True, help="checkpoint to write (must not exist)")
    ap.add_argument("--lanes", type=int, default=128, help="calibration lanes (default: 128)")
    ap.add_argument("--val-lanes", type=int, default=128, help="validation lanes per variant and K (default: 128)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        _, record = reexport(args.src, args.out, args.lanes, args.val_lanes)
    except (ValueError, OSError) as exc:
        ap.error(str(exc).splitlines()[0])
    print(json.dumps({k: v for k, v in record.items() if k not in ("variants", "source_network")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
