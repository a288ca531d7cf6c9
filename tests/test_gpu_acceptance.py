"""scripts/gpu_acceptance.py in its CPU-only mode: the same checks on tiny shapes under the interpreter."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_acceptance.py"


def test_cpu_only_run_writes_one_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the script sets it itself
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "acc"), "--cpu-only", "--budget", "60"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "acc" / "report.json").read_text())
    assert report["mode"] == "cpu-only" and report["ok"] and report["environment"]["triton_interpret"]
    assert report["seconds"] <= 60 + 30 and time.time() - t0 < 200
    parts = report["parts"]
    eq = parts["equality"]
    assert eq["status"] == "passed" and eq["failed"] == 0 and eq["passed"] >= 6
    assert all(c["status"] == "passed" or c.get("why") == "time budget" for c in eq["checks"])
    assert parts["kernel_tests"]["status"] == "skipped" and "no CUDA" in parts["kernel_tests"]["why"]
    bench = parts["bench_simulate"]["rows"]
    assert {r["policy"] for r in bench} == {"belady", "lru", "lfu", "fifo", "random", "fixed"}
    assert all(r["backend"] == "cpu" and r["requests_per_s"] > 0 for r in bench)
    assert any(s["what"] == "bench_simulate on CUDA" for s in report["skipped"])
    # on a loaded machine the last parts may be cut short by the budget: the report must then say so
    rollout, train = parts["bench_rollout"], parts["train"]
    if rollout["status"] == "passed":
        assert rollout["rows"] and all(r["decisions_per_s"] > 0 for r in rollout["rows"])
    else:
        assert rollout["status"] == "partial" and not report["complete"]
    if train["status"] == "passed":
        assert len(train["ppo_seconds_per_iteration"]) == 3 and all(x > 0 for x in train["ppo_seconds_per_iteration"])
    else:
        assert train["status"] == "timeout" and not report["complete"]
    assert "done in" in (tmp_path / "acc" / "acceptance.log").read_text()


def _script():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_a_mismatch_or_a_crash_fails_the_report_and_late_checks_say_why(tmp_path):
    acc = _script()
    run = acc.Run(str(tmp_path), cuda=False, budget=10)
    result = acc._checks(run, [("same", lambda: {"equal": True}), ("differs", lambda: {"equal": False}),
                               ("crashes", lambda: 1 / 0)], deadline=time.time() + 60)
    assert [c["status"] for c in result["checks"]] == ["passed", "failed", "error"]
    assert result["status"] == "error" and result["failed"] == 2 and "ZeroDivisionError" in result["checks"][2]["error"]
    late = acc._checks(run, [("late", lambda: {"equal": True})], deadline=time.time() - 1)
    assert late["checks"][0]["status"] == "skipped" and late["checks"][0]["why"] == "time budget"
    run.save("equality", result)
    run.save("late", late)
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["ok"] and not report["complete"]
