"""Beyond one process: shards and merge, sweeps on Ray (worker and driver killed), PPO and BC on 2 gloo ranks."""

import contextlib
import csv
import itertools
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpupage.cli import main
from gpupage.core.policies import get_policy
from gpupage.core.traces import ZipfParams
from gpupage.distributed.shard import SWEEP, cells, chunks, merge, shard_chunks, write_grid
from gpupage.experiments.sweep import SweepSpec, spec_record, write_sweep

ROOT = Path(__file__).resolve().parents[1]
GRID = ["sweep", "--policies", "lru,fifo,belady", "--K", "2,5", "--seeds", "1-9", "--beta", "0,0.1", "--T", "200",
        "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def rows_of(path):
    with open(path, newline="") as f:
        return sorted(map(tuple, csv.reader(f)))


def assert_one_line_error(result, *words):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("Error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "local.csv"
    res = run(*GRID, "--out", out)
    assert res.exit_code == 0, res.output
    rows = rows_of(out)
    assert len(rows) == 1 + 3 * 2 * 9 * 2
    return rows


# ----------------------------------------------------------------------------- shards and merge


@pytest.mark.parametrize("seeds,Ks,n", [(9, 2, 1), (9, 2, 3), (9, 2, 4), (9, 2, 50), (1, 1, 3), (20000, 1, 2)])
def test_shards_partition_the_grid(seeds, Ks, n):
    record = {"policies": ["lru", "belady"], "K": list(range(1, Ks + 1)), "seeds": [[1, seeds]], "beta": [0.0, 0.5],
              "rho": [1.0]}
    axes = SWEEP.axes(record)
    every = [k for c in chunks(SWEEP, axes, 7) for k in cells(SWEEP, axes, c)]
    assert len(every) == len(set(every)) == 2 * Ks * seeds * 2
    shards = [[k for c in shard_chunks(SWEEP, axes, (i, n)) for k in cells(SWEEP, axes, c)] for i in range(n)]
    assert sorted(itertools.chain(*shards)) == sorted(every)  # each cell in exactly one shard
    # every shard has work while there are enough lanes, and no chunk exceeds one call's lanes
    assert sum(bool(s) for s in shards) == min(n, seeds * Ks * 2)
    assert all(c.hi - c.lo <= SWEEP.max_lanes for i in range(n) for c in shard_chunks(SWEEP, axes, (i, n)))


def test_shards_merge_to_the_local_run_and_resume_as_it(tmp_path, local):
    paths = [tmp_path / f"s{i}.csv" for i in range(4)]
    for i, p in enumerate(paths):
        res = run(*GRID, "--out", p, "--shard", f"{i}/4")
        assert res.exit_code == 0, res.output
        assert run(*GRID, "--out", p, "--shard", f"{i}/4").output.startswith("wrote 0 rows")  # resumes
    res = run("merge", *paths, "--out", tmp_path / "m.csv")
    assert res.exit_code == 0 and "merged 4 shards: 108 rows" in res.output, res.output
    assert rows_of(tmp_path / "m.csv") == local
    # the merged file is the unsharded run's output: rerunning that sweep finds nothing to do
    res = run(*GRID, "--out", tmp_path / "m.csv")
    assert res.exit_code == 0 and "wrote 0 rows" in res.output and "108 already there" in res.output
    # a shard's file belongs to its shard
    assert_one_line_error(run(*GRID, "--out", paths[0], "--shard", "1/4"), "different run", "shard")


def test_merge_refuses_what_is_not_one_whole_run(tmp_path):
    paths = [tmp_path / f"s{i}.csv" for i in range(3)]
    for i, p in enumerate(paths):
        assert run(*GRID, "--out", p, "--shard", f"{i}/3").exit_code == 0
    out = tmp_path / "m.csv"
    assert_one_line_error(run("merge", paths[0], paths[2], "--out", out), "missing shard 1 of 3")
    assert_one_line_error(run("merge", *paths, paths[1], "--out", out), "shard 1/3 given twice")
    other = tmp_path / "other.csv"
    assert run(*GRID, "--T", "300", "--out", other, "--shard", "1/3").exit_code == 0
    assert_one_line_error(run("merge", paths[0], other, paths[2], "--out", out), "different run", "params")
    plain = tmp_path / "plain.csv"
    assert run(*GRID, "--out", plain).exit_code == 0
    assert_one_line_error(run("merge", plain, "--out", out), "not a shard")
    assert_one_line_error(run("merge", tmp_path / "nope.csv", "--out", out), "does not exist")
    assert_one_line_error(run("merge", paths[0], "--out", paths[0]), "is one of the shards")
    good = paths[1].read_bytes()
    lines = good.decode().splitlines(keepends=True)
    paths[1].write_text("".join(lines[:-2]) + lines[-1][:9])  # an unfinished shard, its last row torn
    assert_one_line_error(run("merge", *paths, "--out", out), "shard 1/3", "missing 2 of its", "rerunning")
    row = lines[-1].split(",")
    paths[1].write_text("".join(lines) + ",".join(row[:6] + [str(int(row[6]) + 1)] + row[7:]))
    assert_one_line_error(run("merge", *paths, "--out", out), "conflicting rows")
    paths[1].write_text("".join(lines) + paths[2].read_text().splitlines(keepends=True)[1])
    assert_one_line_error(run("merge", *paths, "--out", out), "outside its slice")
    paths[1].write_bytes(good)
    import fcntl

    with open(paths[2], "rb") as held:  # a shard still being written holds its lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert_one_line_error(run("merge", *paths, "--out", out), "being written")
    out.write_text("precious\n")
    assert_one_line_error(run("merge", *paths, "--out", out), "already exists", "--overwrite")
    assert out.read_text() == "precious\n"
    fifo = out.with_name("pipe")
    os.mkfifo(fifo)  # never replaced by a file, even when asked (nor a device: --out /dev/null as root)
    assert_one_line_error(run("merge", *paths, "--out", fifo, "--overwrite"), "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and not fifo.with_name("pipe.spec.json").exists()
    assert run("merge", *paths, "--out", out, "--overwrite").exit_code == 0
    assert len(rows_of(out)) == 1 + 108


def test_scale_options_are_checked(tmp_path, monkeypatch):
    assert_one_line_error(run(*GRID, "--out", tmp_path / "a.csv", "--shard", "4/4"), "--shard must be I/N")
    assert_one_line_error(run(*GRID, "--out", tmp_path / "a.csv", "--shard", "1of4"), "--shard must be I/N")
    assert_one_line_error(run(*GRID, "--out", tmp_path / "a.csv", "--chunk-lanes", "4"), "apply to --ray runs only")
    assert_one_line_error(run(*GRID, "--out", tmp_path / "a.csv", "--shard", "0/2", "--ray", "local",
                              "--chunk-lanes", "4"), "cannot be combined with --shard")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    res = run(*GRID, "--out", tmp_path / "a.csv", "--ray", "local")
    assert_one_line_error(res, "--ray needs Ray", "pip install 'gpupage[distributed]'")
    assert not (tmp_path / "a.csv").exists()


# ----------------------------------------------------------------------------- Ray (a local instance, 2 CPUs)


# ray_address: tests/conftest.py (one instance for the session)


def _spec(seeds, T, Ks=(4, 8), betas=(0.0, 0.1)):
    return SweepSpec([get_policy(p) for p in ("lru", "fifo", "belady")], list(Ks), list(seeds), list(betas),
                     params=ZipfParams(T=T))


def _ray(lanes=None, shard=None):
    from gpupage.distributed.ray_runner import RayRunner

    return dict(runner=RayRunner("sweep", device="auto", task_cpus=1), lanes=lanes, shard=shard)


def test_ray_equals_the_local_run_row_for_row(tmp_path, ray_address):
    spec = _spec(range(1, 14), 300)
    write_sweep(spec, tmp_path / "local.csv")
    ran = write_grid(SWEEP, spec, tmp_path / "ray.csv", **_ray(lanes=5))  # 3 blocks of seeds, the last of 3
    assert (ran.chunks_run, ran.chunks_total, ran.written) == (12, 12, 3 * 2 * 13 * 2)
    assert rows_of(tmp_path / "ray.csv") == rows_of(tmp_path / "local.csv")
    shard = write_grid(SWEEP, spec, tmp_path / "shard.csv", **_ray(shard=(1, 3)))  # a shard on Ray
    write_grid(SWEEP, spec, tmp_path / "shard_local.csv", shard=(1, 3))
    assert shard.written > 0 and rows_of(tmp_path / "shard.csv") == rows_of(tmp_path / "shard_local.csv")


def _descendants_titled(title: str) -> list[int]:
    """Processes of this test's own Ray instance (descendants of this process) running ``title``."""
    def parent(pid):
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return 0

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(title.encode()):
            p = int(pid)
            while p > 1 and p != os.getpid():
                p = parent(p)
            if p == os.getpid():
                found.append(int(pid))
    return found


@contextlib.contextmanager
def killing_one_ray_task():
    """While the body runs, SIGKILL the first Ray chunk task that appears; yields the list of killed pids."""
    killed, stop = [], threading.Event()

    def kill_one():
        while not stop.is_set() and not killed:
            for pid in _descendants_titled("ray::_run_chunk"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one)
    killer.start()
    try:
        yield killed
    finally:
        stop.set()
        killer.join()


def test_a_worker_killed_mid_task_is_retried_and_the_output_equals_the_local_run(tmp_path, ray_address):
    spec = _spec(range(1, 601), 8000, Ks=(8,), betas=(0.0,))  # 4 chunks of about a second each
    write_sweep(spec, tmp_path / "local.csv")
    with killing_one_ray_task() as killed:
        ran = write_grid(SWEEP, spec, tmp_path / "ray.csv", **_ray(lanes=150))
    assert len(killed) == 1 and ran.chunks_run == 4
    assert rows_of(tmp_path / "ray.csv") == rows_of(tmp_path / "local.csv")


def test_a_driver_killed_mid_run_resumes_without_recomputing_finished_chunks(tmp_path, ray_address):
    args = ["sweep", "--policies", "lru,fifo,belady", "--K", "8", "--seeds", "1-600", "--T", "6000", "--quiet",
            "--chunk-lanes", "100"]
    write_sweep(_spec(range(1, 601), 6000, Ks=(8,), betas=(0.0,)), tmp_path / "local.csv")
    out = tmp_path / "ray.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "gpupage", *args, "--out", str(out), "--ray", ray_address],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    per_chunk = 3 * 100
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") > per_chunk:
            break
        time.sleep(0.001)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # killed mid-run, not after it
    proc.kill()
    proc.wait()
    rows = out.read_bytes().count(b"\n") - 1
    assert rows % per_chunk == 0 and 0 < rows < 6 * per_chunk  # whole chunks only
    res = run(*args, "--out", out, "--ray", ray_address)  # joins the same cluster (this process's connection)
    assert res.exit_code == 0, res.output
    assert f"ran {6 - rows // per_chunk} of 6 chunks" in res.output and f"{rows} already there" in res.output
    assert rows_of(out) == rows_of(tmp_path / "local.csv")


# ----------------------------------------------------------------------------- PPO and BC on 2 gloo ranks


TRAIN = ["train", "--mode", "blackbox", "--K", "4", "--hidden", "16", "--bc-rounds", "1", "--bc-lanes", "16",
         "--bc-epochs", "2", "--ppo-iterations", "8", "--lanes", "64", "--M", "16", "--W", "6",
         "--shift", "30", "--T", "60", "--device", "cpu", "--quiet"]  # T=60: every PPO iteration ends its episodes


def _gpupage(*args, **kw):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "gpupage", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """An uninterrupted 2-rank run (torchrun, gloo), launched by train --nproc."""
    d = tmp_path_factory.mktemp("ranks2")
    proc = _gpupage(*TRAIN, "--out", d / "c.pt", "--nproc", "2")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert out.strip().splitlines()[-1].startswith(f"wrote {d / 'c.pt'}")  # rank 0 alone reports
    return d


def test_two_ranks_of_32_lanes_train_as_one_process_of_64(tmp_path, two_ranks):
    """Behaviour cloning, DAgger and PPO: the same seeds, decisions, samples and minibatches, so every
    discrete outcome is equal and the floats agree to rounding.  Each rank sums its share of a
    minibatch and the all-reduce adds the shares: float32 sums in another order, differing in the last
    bits.  Adam divides by sqrt(v), so where a gradient is only rounding it takes steps of up to lr:
    the score head's output bias, to which the softmax over slots is blind (its true gradient is 0),
    is the one such parameter and is left out (it drifts by about 1e-3).  Every other parameter agrees
    within 5e-5 (measured: 7e-6 after 2 rounds of 16 lanes and 8 iterations of 64) and the policies'
    probabilities within 1e-5 (measured: 6e-8)."""
    res = run(*TRAIN, "--out", tmp_path / "c.pt")
    assert res.exit_code == 0, res.output
    one, two = _log(tmp_path / "train_log.csv"), _log(two_ranks / "train_log.csv")
    assert [(r["stage"], r["step"], r["samples"]) for r in one] == [(r["stage"], r["step"], r["samples"]) for r in two]
    assert len(one) == 2 + 8
    for a, b in zip(one, two):
        assert float(a["agreement"] or 0) == float(b["agreement"] or 0)
        assert float(a["fault_rate"] or 0) == pytest.approx(float(b["fault_rate"] or 0), abs=1e-12)
        assert float(a["loss"] or a["v_loss"]) == pytest.approx(float(b["loss"] or b["v_loss"]), rel=1e-5)
    import torch

    from gpupage.controller import env as E
    from gpupage.controller.network import load_controller

    m1, _ = load_controller(tmp_path / "c.pt")
    m2, _ = load_controller(two_ranks / "c.pt")
    s1, s2 = m1.state_dict(), m2.state_dict()
    blind = {"score.2.bias"}
    assert blind < set(s1) and s1["score.2.bias"].numel() == 1
    assert max((s1[k] - s2[k]).abs().max().item() for k in s1 if k not in blind) < 5e-5
    obs, _ = E.reset(E.EnvParams(K=4, zipf=ZipfParams(M=16, W=6, shift=30, T=60)), list(range(500, 532)))
    with torch.no_grad():
        p1, p2 = torch.softmax(m1(obs)[0], 1), torch.softmax(m2(obs)[0], 1)
    assert (p1 - p2).abs().max().item() < 1e-5


def _rank_pid(root: int, rank: int) -> int | None:
    """The pid of torchrun rank ``rank`` among the descendants of ``root`` (our launcher)."""
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LOCAL_RANK={rank}".encode() in environ:
            return pid
        todo += children.get(pid, [])
    return None


def test_a_rank_killed_mid_run_resumes_to_the_uninterrupted_run(tmp_path, two_ranks):
    out = tmp_path / "c.pt"
    proc = _gpupage(*TRAIN, "--out", out, "--nproc", "2")
    log = tmp_path / "train_log.csv"
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if log.exists() and any(r["stage"] == "ppo" and int(r["step"]) >= 2 for r in _log(log)):
            break
        time.sleep(0.01)
    pid = _rank_pid(proc.pid, 1)
    assert proc.poll() is None and pid is not None, "the run ended before a rank could be killed"
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert err.strip().splitlines()[-1].startswith("Error: training on 2 ranks failed: rank 1 was killed by SIGKILL")
    import torch

    stopped = torch.load(out, weights_only=True)["meta"]
    assert stopped["stage"] == "ppo" and 1 <= stopped["ppo_resume"]["iteration"] < 8
    proc = _gpupage(*TRAIN, "--out", out, "--nproc", "2", "--resume", out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    a = torch.load(out, weights_only=True)["state_dict"]
    b = torch.load(two_ranks / "c.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["samples"] for r in _log(log)] == [r["samples"] for r in _log(two_ranks / "train_log.csv")]
