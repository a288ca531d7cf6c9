"""mrc as a grid of (policy, K) cells: chunks, resume, shards and merge, Ray (worker and driver killed)."""

import csv
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from gpupage.distributed.shard import MRC, cells, chunks, shard_chunks, write_grid
from gpupage.experiments.mrc import miss_ratio_curves, mrc_spec
from test_cli import assert_one_line_error, run
from test_distributed import ROOT, killing_one_ray_task, rows_of

POLICIES = "lru,fifo,arc,belady"
SIZES = "1,2,3,5,8,13,21,34,55,89"


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    gen = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("trace") / "t.txt"
    path.write_text("\n".join(map(str, (gen.zipf(1.2, size=4000) % 300) * 7919)) + "\n")
    return path


def mrc_args(trace, out, *more):
    return ["mrc", trace, "--policies", POLICIES, "--K", SIZES, "--warmup", "0.1", "--quiet", "--out", out, *more]


@pytest.fixture(scope="module")
def local(trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    res = run(*mrc_args(trace, out))
    assert res.exit_code == 0, res.output
    assert "ran 4 of 4 chunks" in res.output  # one chunk a policy: all 10 sizes fit one batch
    return out, rows_of(out / "mrc.csv")


def _reference(trace):
    """Every (policy, K) separately, as one row each of the command's CSV."""
    from gpupage.core.io import read_trace

    ids = read_trace(str(trace)).ids
    out = []
    for p in POLICIES.split(","):
        for k in map(int, SIZES.split(",")):
            (r,) = miss_ratio_curves(ids, [p], [k], warmup=400, one_pass=False)
            out.append((p, str(k), str(r["requests"]), str(r["faults"]), str(r["non_compulsory_faults"]),
                        f"{r['miss_ratio']:.6f}"))
    return sorted(out + [("policy", "K", "requests", "faults", "non_compulsory_faults", "miss_ratio")])


def test_the_local_run_equals_each_cell_computed_alone_and_chunks_change_no_number(trace, local, tmp_path):
    assert local[1] == _reference(trace)
    spec = mrc_spec(trace, POLICIES.split(","), [int(k) for k in SIZES.split(",")], 0.1)
    axes = MRC.axes(MRC.record(spec))
    # lru and belady are one pass for every size: never cut; fifo and arc in blocks of 3 sizes
    assert [(c.group[0], c.lo, c.hi) for c in chunks(MRC, axes, 3)] == \
        [("lru", 0, 10)] + [("fifo", lo, min(lo + 3, 10)) for lo in (0, 3, 6, 9)] + \
        [("arc", lo, min(lo + 3, 10)) for lo in (0, 3, 6, 9)] + [("belady", 0, 10)]
    ran = write_grid(MRC, spec, tmp_path / "mrc.csv", lanes=3)
    assert (ran.chunks_run, ran.written) == (10, 40)
    assert rows_of(tmp_path / "mrc.csv") == local[1]
    sampled = mrc_spec(trace, POLICIES.split(","), "auto", 0.1, sample_rate=0.5, seed=4)
    write_grid(MRC, sampled, tmp_path / "sampled.csv", lanes=5)
    from gpupage.core.io import read_trace

    t = read_trace(str(trace))
    whole = miss_ratio_curves(t.ids, POLICIES.split(","), "auto", 400, 0.5, 4, original=t.original[t.ids])
    assert len(whole) > 40 and rows_of(tmp_path / "sampled.csv")[:-1] == sorted(
        tuple(str(r[c]) for c in ("policy", "K", "requests", "faults", "non_compulsory_faults")) + (f"{r['miss_ratio']:.6f}",)
        for r in whole)
    for n in (1, 2, 3, 7, 30):  # shards partition the cells, every shard has work while there are chunks
        got = [k for i in range(n) for c in shard_chunks(MRC, axes, (i, n)) for k in cells(MRC, axes, c)]
        assert sorted(got) == sorted(set(got)) and len(got) == 40
        assert sum(bool(shard_chunks(MRC, axes, (i, n))) for i in range(n)) == min(n, 2 + 2 * 10)


def test_resume_overwrite_and_another_run(trace, local, tmp_path):
    mine, out = tmp_path / "t.txt", tmp_path / "o"
    mine.write_bytes(trace.read_bytes())
    assert run(*mrc_args(mine, out)).exit_code == 0
    csv_path, png = out / "mrc.csv", out / "mrc.png"
    drawn = png.stat().st_mtime_ns
    res = run(*mrc_args(mine, out))  # finished: nothing computed, nothing redrawn
    assert res.exit_code == 0 and "wrote 0 rows" in res.output and "ran 0 of 4 chunks" in res.output, res.output
    assert png.stat().st_mtime_ns == drawn
    lines = csv_path.read_text().splitlines(keepends=True)
    fifo = [i for i, ln in enumerate(lines) if ln.startswith("fifo,")]
    csv_path.write_text("".join(ln for i, ln in enumerate(lines) if i not in fifo[3:]) + "arc,1,36")  # torn row
    res = run(*mrc_args(mine, out))  # interrupted: only fifo's chunk is computed again
    assert res.exit_code == 0 and "wrote 7 rows" in res.output and "ran 1 of 4 chunks" in res.output, res.output
    assert rows_of(csv_path) == local[1] and png.stat().st_mtime_ns > drawn
    before = csv_path.read_bytes()
    assert_one_line_error(run(*mrc_args(mine, out, "--K", "4,8")), "different run", "differs in: K")
    assert_one_line_error(run(*mrc_args(mine, out, "--seed", "3")), "different run", "seed", "--overwrite")
    ids = mine.read_text().split("\n")
    i = next(i for i, x in enumerate(ids) if x != ids[0])
    ids[0], ids[i] = ids[i], ids[0]
    mine.write_text("\n".join(ids))  # two requests swapped: the same path, size, length and blocks
    assert_one_line_error(run(*mrc_args(mine, out)), "different run", "differs in: trace")
    assert csv_path.read_bytes() == before
    res = run(*mrc_args(mine, out, "--K", "4,8", "--overwrite"))
    assert res.exit_code == 0 and "wrote 8 rows" in res.output, res.output
    assert len(rows_of(csv_path)) == 1 + 8


def test_shards_merge_to_the_local_run(trace, local, tmp_path):
    dirs = [tmp_path / f"s{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        copy = tmp_path / f"node{i}" / "t.txt"  # each node reads its own copy of the trace, at its own path
        copy.parent.mkdir()
        copy.write_bytes(trace.read_bytes())
        res = run(*mrc_args(copy, d, "--shard", f"{i}/3"))
        assert res.exit_code == 0 and "wrote" in res.output, res.output
        assert not (d / "mrc.png").exists()  # a shard draws no plot
    merged = tmp_path / "all"
    res = run("merge", *[d / "mrc.csv" for d in dirs], "--out", merged / "mrc.csv")
    assert res.exit_code == 0 and "merged 3 shards: 40 rows" in res.output, res.output
    assert rows_of(merged / "mrc.csv") == local[1]
    other = tmp_path / "node2" / "t.txt"  # a shard of another trace (one request changed) is refused
    other.write_text(trace.read_text().replace("\n", "\n7919\n", 1))
    res = run(*mrc_args(other, tmp_path / "x", "--shard", "2/3"))
    assert res.exit_code == 0, res.output
    assert_one_line_error(run("merge", dirs[0] / "mrc.csv", dirs[1] / "mrc.csv", tmp_path / "x" / "mrc.csv",
                              "--out", tmp_path / "bad.csv"), "different run", "trace")
    res = run(*mrc_args(trace, merged))  # the unsharded command on the merge: nothing to compute, the plot
    assert res.exit_code == 0 and "wrote 0 rows" in res.output and "ran 0 of 4 chunks" in res.output, res.output
    assert (merged / "mrc.png").stat().st_size > 10000


def test_scale_options_are_checked(trace, tmp_path, monkeypatch):
    out = tmp_path / "o"
    assert_one_line_error(run(*mrc_args(trace, out, "--shard", "3/3")), "--shard must be I/N")
    assert_one_line_error(run(*mrc_args(trace, out, "--task-cpus", "2")), "apply to --ray runs only")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert_one_line_error(run(*mrc_args(trace, out, "--ray", "local")), "--ray needs Ray", "pip install")
    assert not out.exists()


# ----------------------------------------------------------------------------- Ray (tests/conftest.py's instance)


def _ray():
    from gpupage.distributed.ray_runner import RayRunner

    return RayRunner("mrc", device="cpu", task_cpus=1)


def test_ray_equals_the_local_run_row_for_row(trace, local, tmp_path, ray_address):
    spec = mrc_spec(trace, POLICIES.split(","), [int(k) for k in SIZES.split(",")], 0.1)
    ran = write_grid(MRC, spec, tmp_path / "ray.csv", runner=_ray(), lanes=4)
    assert (ran.chunks_run, ran.chunks_total, ran.written) == (8, 8, 40)
    assert rows_of(tmp_path / "ray.csv") == local[1]
    res = run(*mrc_args(trace, tmp_path / "cli", "--ray", ray_address, "--chunk-lanes", "2"))
    assert res.exit_code == 0 and "ran 12 of 12 chunks" in res.output, res.output
    assert rows_of(tmp_path / "cli" / "mrc.csv") == local[1] and (tmp_path / "cli" / "mrc.png").exists()


def test_a_learned_checkpoint_travels_with_the_chunks(trace, tmp_path, ray_address, monkeypatch):
    """Workers never open the checkpoint file (a cluster's nodes need not share one): deleted once the
    driver has read it, the Ray run still equals the local one."""
    import ray
    import torch

    from gpupage.zoo.learned import checkpoint_dict
    from test_learned import random_net

    ckpt = tmp_path / "net.pt"
    torch.save(checkpoint_dict(random_net(np.random.default_rng(3))), ckpt)
    spec = mrc_spec(trace, ["learned"], [2, 5, 13, 34], 0.1, options={"checkpoint": str(ckpt), "candidates": 4})
    write_grid(MRC, spec, tmp_path / "local.csv")
    put = ray.put
    monkeypatch.setattr(ray, "put", lambda obj: (ckpt.unlink(), put(obj))[1])
    ran = write_grid(MRC, spec, tmp_path / "ray.csv", runner=_ray(), lanes=2)
    assert not ckpt.exists() and ran.chunks_run == 2
    assert rows_of(tmp_path / "ray.csv") == rows_of(tmp_path / "local.csv")


@pytest.fixture(scope="module")
def long_trace(tmp_path_factory):
    """A trace on which a chunk of 8 arc sizes takes about a second."""
    gen = np.random.default_rng(9)
    path = tmp_path_factory.mktemp("long") / "long.txt"
    path.write_text("\n".join(map(str, gen.zipf(1.05, size=1_000_000) % 20000)) + "\n")
    return path


LONG = ["--policies", "arc", "--K", ",".join(str(2 ** i) for i in range(3, 14)) + ",10000,12000,15000,20000,"
        + ",".join(str(20000 + 100 * i) for i in range(1, 18)), "--quiet"]  # 32 sizes


def test_a_worker_killed_mid_task_is_retried_and_the_output_equals_the_local_run(long_trace, tmp_path, ray_address):
    assert run("mrc", long_trace, *LONG, "--out", tmp_path / "local").exit_code == 0
    with killing_one_ray_task() as killed:
        res = run("mrc", long_trace, *LONG, "--out", tmp_path / "ray", "--ray", ray_address, "--chunk-lanes", "8")
    assert res.exit_code == 0 and "ran 4 of 4 chunks" in res.output, res.output
    assert len(killed) == 1
    assert rows_of(tmp_path / "ray" / "mrc.csv") == rows_of(tmp_path / "local" / "mrc.csv")


def test_a_driver_killed_mid_run_resumes_without_recomputing_finished_chunks(long_trace, tmp_path, ray_address):
    assert run("mrc", long_trace, *LONG, "--out", tmp_path / "local").exit_code == 0
    args = ["mrc", str(long_trace), *LONG, "--chunk-lanes", "4", "--out", str(tmp_path / "ray")]
    out = tmp_path / "ray" / "mrc.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "gpupage", *args, "--ray", ray_address], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    per_chunk = 4
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") > per_chunk:
            break
        time.sleep(0.001)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # killed mid-run, not after it
    proc.kill()
    proc.wait()
    rows = out.read_bytes().count(b"\n") - 1
    assert rows % per_chunk == 0 and 0 < rows < 8 * per_chunk  # whole chunks only
    assert not (out.parent / "mrc.png").exists()
    res = run(*args, "--ray", ray_address)
    assert res.exit_code == 0, res.output
    assert f"ran {8 - rows // per_chunk} of 8 chunks" in res.output and f"{rows} already there" in res.output
    assert rows_of(out) == rows_of(tmp_path / "local" / "mrc.csv")


def test_the_csv_keeps_its_columns_and_order(local):
    out, _ = local
    with open(out / "mrc.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["policy", "K", "requests", "faults", "non_compulsory_faults", "miss_ratio"]
    # a local run appends chunk by chunk: policies as given, smallest K first
    assert [(r[0], int(r[1])) for r in rows[1:]] == [(p, k) for p in POLICIES.split(",")
                                                    for k in map(int, SIZES.split(","))]
