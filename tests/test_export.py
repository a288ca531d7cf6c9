"""Choosing the learned network's integer export on validation (gpupage.controller.export, slotnet.quantise)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gpupage.controller.slotnet import SlotNet, _exponent, lane_batch, quantise
from gpupage.core.simulate import simulate
from gpupage.zoo import learned as L
from gpupage.zoo import learned_dagger as LD

ROOT = Path(__file__).resolve().parents[1]


def _calib(K=8, lanes=4):
    seeds = np.arange(lanes) + 10000
    traces, Ks = lane_batch(seeds, (K,), 1.0)
    return torch.from_numpy(LD.collect(traces, Ks, None, 1.0, seeds)[0].reshape(-1, L.N_IN))


def _hidden(net, x):
    """Each hidden layer's integer units as the specification computes them (int64, plain numpy)."""
    h1 = np.clip((x @ net.W1.T.astype(np.int64) + net.b1) >> net.s1, 0, 255)
    h2 = np.clip((h1 @ net.W2.T.astype(np.int64) + net.b2) >> net.s2, 0, 255)
    return h1, h2


def test_rounding_centres_the_units_on_the_float_activations():
    torch.manual_seed(0)
    model = SlotNet((16, 8))
    calib = _calib()
    floor, rnd = quantise(model, calib), quantise(model, calib, rounding=True)
    assert (floor.W1 == rnd.W1).all() and floor.s1 == rnd.s1 and (rnd.b1 - floor.b1 == 1 << (rnd.s1 - 1)).all()
    x = calib.long().numpy()
    a1 = model.activations(calib)[0].detach().double().numpy()
    a1 = a1 * 2.0 ** _exponent(255, a1.max())  # the float units on the export's scale: the peak at <= 255
    errors = {}
    for name, net in (("floor", floor), ("round", rnd)):
        h1 = _hidden(net, x)[0]
        inside = (a1 > 1) & (a1 < 254)
        errors[name] = float((h1 - a1)[inside].mean())
    assert -0.6 < errors["floor"] < -0.4 and abs(errors["round"]) < 0.1, errors  # floor: half a level low


def test_finer_scales_give_the_bulk_more_levels_and_saturate_the_top():
    torch.manual_seed(1)
    model = SlotNet((16, 8))
    calib = _calib()
    x = calib.long().numpy()
    plain, finer = quantise(model, calib), quantise(model, calib, finer=(2, 0))
    h_plain, h_finer = _hidden(plain, x)[0], _hidden(finer, x)[0]
    assert h_plain.max() <= 255 and (h_plain == 255).mean() < 1e-3  # the peak maps to at most 255
    assert (h_finer == 255).mean() > (h_plain == 255).mean()  # 4x finer: the top saturates
    low = (h_finer > 0) & (h_finer < 255)
    ratio = h_finer[low & (h_plain > 8)] / h_plain[low & (h_plain > 8)]
    assert abs(float(np.median(ratio)) - 4) < 0.5  # and below it, four levels for each plain one


def test_search_export_keeps_the_variant_that_validates_best():
    from gpupage.controller.export import VARIANTS, search_export

    torch.manual_seed(2)
    model = SlotNet((8, 8))
    calib = _calib()
    seen = []

    def score(net):  # any score: here one that prefers the rounding exports with finer second layers
        return -(net.b1.sum() % 7) - 10 * net.s2

    def validation(net):
        seen.append(net)
        return score(net)

    net, record = search_export(model, calib, validation)
    scores = [v["val_excess_pct"] for v in record["variants"]]
    assert len(seen) == len(VARIANTS) == 18 and scores == [float(score(n)) for n in seen]
    i = int(np.argmin(scores))  # the first of the lowest
    assert record["val_excess_pct"] == scores[i] and record["rounding"] == VARIANTS[i]["rounding"]
    assert all((getattr(net, a) == getattr(seen[i], a)).all() for a in ("W1", "b1", "W2", "b2", "w3"))
    assert (net.s1, net.s2) == (seen[i].s1, seen[i].s2)
    plain = quantise(model, calib)  # the first variant is the export training makes
    assert (seen[0].b1 == plain.b1).all() and (seen[0].s1, seen[0].s2) == (plain.s1, plain.s2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from gpupage.controller.slotnet import TrainConfig, train_to

    path = tmp_path_factory.mktemp("export") / "small.pt"
    train_to(path, TrainConfig(lanes=6, rounds=1, epochs=1, check_lanes=2, batch_size=256, Ks=(8,), hidden=(8, 8),
                               variant_frac=1.0, tie_rule="lru"), "test")
    return path


def test_reexport_writes_the_best_validated_export_and_records_it(trained, tmp_path):
    from gpupage.controller.export import main
    from gpupage.controller.slotnet import Validation

    out = tmp_path / "re.pt"
    assert main([str(trained), "--out", str(out), "--lanes", "3", "--val-lanes", "2"]) == 0
    raw = torch.load(out, weights_only=True)
    record = raw["meta"]["export"]
    scores = [v["val_excess_pct"] for v in record["variants"]]
    assert record["val_excess_pct"] == min(scores) and record["source"] == str(trained)
    again = Validation((8,), 2, 40000)(L.load_network(str(out)))  # its own score, recomputed
    assert again == pytest.approx(record["val_excess_pct"], abs=1e-12)
    src = torch.load(trained, weights_only=True)
    assert all(torch.equal(src["meta"]["float_state_dict"][k], v) for k, v in raw["meta"]["float_state_dict"].items())
    assert raw["meta"]["command"] == src["meta"]["command"]  # the training run it came from
    # the chosen export's own check, on the training run's held-out check lanes (the report's is the replaced one's)
    traces, K = lane_batch(np.arange(2) + 30000, (8,))
    mine = simulate(torch.from_numpy(traces), "learned", torch.from_numpy(K), options={"checkpoint": str(out)})
    assert record["check"]["randomised"]["integer"] == int(mine.faults.sum())


@pytest.mark.parametrize("case, words", [
    ("exists", "exists; remove it"),
    ("version 1", "version-1 network"),
    ("not a checkpoint", "not a learned-policy checkpoint"),
    ("no lanes", "lanes and val_lanes must be >= 1"),
])
def test_reexport_refuses_bad_input_in_one_line(trained, tmp_path, capsys, case, words):
    from gpupage.controller.export import main

    src, out, extra = str(trained), tmp_path / "re.pt", []
    if case == "exists":
        out.write_text("a user's results")
    elif case == "version 1":
        src = str(ROOT / "checkpoints" / "learned_v1.pt")
    elif case == "not a checkpoint":
        src = str(tmp_path / "junk.pt")
        Path(src).write_text("junk")
    else:
        extra = ["--lanes", "0"]
    with pytest.raises(SystemExit) as exc:
        main([src, "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and words in err[0], err
    assert (out.read_text() == "a user's results") if case == "exists" else not out.exists()


def test_reexport_refuses_a_network_trained_on_a_trace_file(trained, tmp_path):
    from gpupage.controller.export import reexport

    raw = torch.load(trained, weights_only=True)
    raw["meta"]["config"]["trace_file"] = "calls.jsonl"
    src = tmp_path / "trace.pt"
    torch.save(raw, src)
    with pytest.raises(ValueError, match="trained on a trace file"):
        reexport(src, tmp_path / "re.pt")


@pytest.mark.parametrize("K", [4, 8])
def test_the_shipped_networks_are_their_float_weights_exported_as_recorded(K):
    """checkpoints/learned_k{4,8}.pt came out of ``python -m gpupage.controller.export``: the network is its float
    weights quantised with the recorded choice, on the recorded calibration lanes, and that choice validated best."""
    from gpupage.controller.slotnet import TrainConfig

    raw = torch.load(ROOT / "checkpoints" / f"learned_k{K}.pt", weights_only=True)
    meta, record = raw["meta"], raw["meta"]["export"]
    assert record["val_excess_pct"] == min(v["val_excess_pct"] for v in record["variants"])
    model = SlotNet(tuple(meta["hidden"]))
    model.load_state_dict(meta["float_state_dict"])
    cfg = meta["config"]
    seeds = np.arange(record["calibration_lanes"]) + cfg["seed_start"]
    traces, Ks = lane_batch(seeds, tuple(cfg["Ks"]), cfg["variant_frac"])
    source = L.load_network(record["source_network"])  # calibrated on the rollouts of the network it replaced
    calib = torch.from_numpy(LD.collect(traces, Ks, source, 0.0, seeds)[0].reshape(-1, L.N_IN))
    net = quantise(model, calib, rounding=record["rounding"], finer=tuple(record["finer"]))
    shipped = L.load_network(raw)
    assert all((getattr(net, a) == getattr(shipped, a)).all() for a in ("W1", "b1", "W2", "b2", "w3"))
    assert (net.s1, net.s2) == (shipped.s1, shipped.s2) and TrainConfig.val_seed == record["val_seed"]
