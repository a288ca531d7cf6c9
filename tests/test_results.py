"""Results files: resumable sweeps, interruption at any moment (kill -9 included), two writers, atomic files."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpupage.cli import main
from gpupage.core.results import ResultsTable, atomic_path, spec_path

SWEEP = ["sweep", "--policies", "lru,fifo,lfu", "--K", "2,4,8", "--seeds", "1-6", "--beta", "0,0.1", "--T", "300",
         "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def rows_of(path):
    with open(path, newline="") as f:
        return sorted(map(tuple, csv.reader(f)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The rows of an uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "ref.csv"
    res = run(*SWEEP, "--out", out)
    assert res.exit_code == 0, res.output
    rows = rows_of(out)
    assert len(rows) == 1 + 3 * 3 * 6 * 2
    return rows


def test_rerun_of_a_finished_sweep_keeps_it_and_does_nothing(tmp_path, reference):
    out = tmp_path / "s.csv"
    assert run(*SWEEP, "--out", out).exit_code == 0
    before = out.read_bytes()
    res = run(*SWEEP, "--out", out)
    assert res.exit_code == 0 and "wrote 0 rows" in res.output and "108 already there" in res.output
    assert out.read_bytes() == before


def test_interrupted_sweep_resumes_to_the_uninterrupted_rows(tmp_path, monkeypatch, reference):
    import gpupage.experiments.sweep as sweep_mod

    real = sweep_mod.run_sweep

    def interrupted(spec, done=None):
        for i, rows in enumerate(real(spec, done)):
            if i == 4:
                raise KeyboardInterrupt
            yield rows

    out = tmp_path / "s.csv"
    monkeypatch.setattr(sweep_mod, "run_sweep", interrupted)
    res = run(*SWEEP, "--out", out)
    assert res.exit_code == 130 and "finished results were kept" in res.output
    assert len(rows_of(out)) == 1 + 4 * 6  # four whole batches of six seeds
    monkeypatch.setattr(sweep_mod, "run_sweep", real)
    res = run(*SWEEP, "--out", out)
    assert res.exit_code == 0 and "wrote 84 rows" in res.output and "24 already there" in res.output
    assert rows_of(out) == reference


def test_resume_finishes_cells_written_in_any_order(tmp_path, reference):
    """A file whose cells came from chunks in another order (as a distributed run writes them) resumes."""
    out = tmp_path / "s.csv"
    assert run(*SWEEP, "--out", out).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    kept = body[::-3]  # a third of the cells, reversed
    out.write_text(header + "".join(kept))
    res = run(*SWEEP, "--out", out)
    assert res.exit_code == 0 and f"{len(kept)} already there" in res.output
    assert rows_of(out) == reference


def test_torn_last_row_is_dropped_and_redone(tmp_path, reference):
    out = tmp_path / "s.csv"
    assert run(*SWEEP, "--out", out).exit_code == 0
    data = out.read_bytes()
    out.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 7])  # the last row cut after 6 bytes
    res = run(*SWEEP, "--out", out)
    assert res.exit_code == 0 and "wrote 1 rows" in res.output
    assert rows_of(out) == reference


def test_kill_9_at_several_moments_then_resume(tmp_path):
    """SIGKILL the sweep process each time its file has grown by another eighth; every kill keeps the rows
    written before it (a kill inside a write that spans pages may cut it short, mid-row: Linux stops a write
    between pages for a fatal signal; the resume drops the cut row); the final rerun completes to exactly the
    rows of an uninterrupted run."""
    grid = [*SWEEP[:-1], "--seeds", "1-60"]
    ref = tmp_path / "ref.csv"
    assert run(*grid, "--out", ref).exit_code == 0
    reference = rows_of(ref)
    out = tmp_path / "s.csv"
    cmd = [sys.executable, "-m", "gpupage", *grid, "--out", str(out)]
    full, kept = ref.stat().st_size, []
    for _ in range(4):
        base = out.stat().st_size if out.exists() else 0
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if out.exists() and out.stat().st_size > base + full // 8:  # margin: a starved loop kills late
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept.append(out.read_bytes().count(b"\n") - 1)  # whole rows, the header aside
    assert kept == sorted(kept) and kept[0] > 1 and kept[-1] < len(reference)  # progress kept, run not finished
    res = run(*grid, "--out", out)
    assert res.exit_code == 0, res.output
    assert rows_of(out) == reference


def test_sigterm_keeps_finished_rows(tmp_path, reference):
    out = tmp_path / "s.csv"
    cmd = [sys.executable, "-m", "gpupage", *SWEEP, "--seeds", "1-400", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and out.stat().st_size > 2000):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "Error: terminated (finished results were kept)"
    assert out.read_bytes().endswith(b"\n")


def test_second_writer_is_refused(tmp_path):
    out = tmp_path / "s.csv"
    assert run(*SWEEP, "--out", out).exit_code == 0
    before = out.read_bytes()
    from gpupage.experiments.sweep import SWEEP_COLUMNS

    with open(spec_path(out)) as f:
        import json

        spec = json.load(f)
    with ResultsTable(out, SWEEP_COLUMNS, ["policy"], spec):  # holds the lock, as a running sweep does
        res = run(*SWEEP, "--out", out)
        assert res.exit_code == 1 and "being written by another gpupage run" in res.output
        res = run(*SWEEP, "--out", out, "--overwrite")
        assert res.exit_code == 1 and "being written by another gpupage run" in res.output
    assert out.read_bytes() == before


def test_another_specification_is_refused_never_overwritten(tmp_path):
    out = tmp_path / "s.csv"
    assert run(*SWEEP, "--out", out).exit_code == 0
    before = out.read_bytes()
    res = run(*SWEEP[:-1], "--alpha", "0.8", "--out", out)
    assert res.exit_code == 1 and "different run" in res.output and "params" in res.output
    assert out.read_bytes() == before
    res = run(*SWEEP, "--seeds", "1-7", "--out", out, "--overwrite")
    assert res.exit_code == 0 and "wrote 126 rows" in res.output


def test_a_file_not_written_by_a_sweep_is_not_touched(tmp_path):
    out = tmp_path / "notes.csv"
    out.write_text("my,own,data\n")
    res = run(*SWEEP, "--out", out)
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert out.read_text() == "my,own,data\n"
    res = run(*SWEEP, "--out", tmp_path)
    assert res.exit_code != 0 and "Traceback" not in res.output


def test_short_write_leaves_no_torn_row(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    with ResultsTable(path, ["a", "b"], ["a"], {"x": 1}) as t:
        t.append([{"a": 1, "b": 2}])
        real = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: real(fd, data[:5]))  # a disk that fills up
        with pytest.raises(OSError, match="short write"):
            t.append([{"a": 2, "b": 3}, {"a": 3, "b": 4}])
    assert path.read_text() == "a,b\n1,2\n"


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["r.json"]
    with atomic_path(p) as tmp:
        open(tmp, "w").write("new")
    assert p.read_text() == "new" and os.listdir(tmp_path) == ["r.json"]


def test_atomic_path_gives_the_permissions_of_a_plain_write(tmp_path):
    """mkstemp's temporary file is private (0o600); the result is not: a shared cluster's group can read it."""
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "new.json") as tmp:
            Path(tmp).write_text("{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.json"
        kept.write_text("old")
        kept.chmod(0o640)
        with atomic_path(kept) as tmp:
            Path(tmp).write_text("new")
        assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "new"
    finally:
        os.umask(old)
