"""Sweeps: the results database survives SIGKILL, concurrent sweeps never repeat a run, Ray runs them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixerzoo.sweep import Owner, ResultsDB, family_of, grid, run_sweep, script_grid, sweep_main
from mixerzoo.tasks.mqar import MQARTask, Segment
from mixerzoo.train import RunConfig

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "_sweep_grid.py"
TASK = MQARTask(vocab_size=128, train_segments=(Segment(64, 4, 128),), test_segments=(Segment(64, 4, 32),))
RESULT_COLUMNS = ("accuracy", "metrics", "num_params", "state_size", "wall_time", "device", "versions", "finished_at")


def tiny_grid(n: int, epochs: int = 1) -> list[RunConfig]:
    return grid(["conv3-attn"], [16], [1e-3 * (i + 1) for i in range(n)], task=TASK, epochs=epochs,
                train_batch_size=64, test_batch_size=32)  # fmt: skip


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), out.get("PYTHONPATH")) if p)
    out.update(extra)
    return out


def start_sweep(db: Path, *args: str, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--db", str(db), "--no-report", "--no-progress", *args],
        env=env(**extra_env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_rows(db: Path) -> dict[str, dict]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return {row["run_id"]: dict(row) for row in conn.execute("SELECT * FROM runs")}
    finally:
        conn.close()


def assert_consistent(rows: dict[str, dict]) -> None:
    """No half-written row: a done row has every result column, any other row has none."""
    for row in rows.values():
        filled = [row[c] is not None for c in RESULT_COLUMNS]
        if row["status"] == "done":
            assert all(filled), row
            assert json.loads(row["metrics"])["accuracy"] == row["accuracy"]
        else:
            assert row["status"] in ("pending", "running", "failed") and not any(filled), row


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def pid_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True  # a zombie has stopped running
        time.sleep(0.1)
    return False


# ----------------------------------------------------------------------------------------------------


def test_run_id_is_canonical_and_ignores_family():
    a = RunConfig("conv-taylor", 32, 1e-3, task=TASK)
    b = RunConfig("conv3-taylor16", 32, 1e-3, task=TASK, family="Based")
    assert a.run_id == b.run_id and len(a.run_id) == 16
    assert a.resolved()["spec"] == "conv3-taylor16" and a.resolved()["max_len"] == 64
    assert a.replace(lr=2e-3).run_id != a.run_id
    assert a.replace(task=MQARTask(vocab_size=256, train_segments=TASK.train_segments,
                                   test_segments=TASK.test_segments)).run_id != a.run_id  # fmt: skip
    assert RunConfig.from_dict(b.to_dict()) == b
    assert RunConfig.from_dict(json.loads(json.dumps(b.resolved()))).run_id == b.run_id
    with pytest.raises(ValueError, match="d_model"):
        RunConfig("conv3-attn", 0, 1e-3)
    with pytest.raises(ValueError, match="unknown RunConfig keys"):
        RunConfig.from_dict({"spec": "attn", "d_model": 8, "lr": 1.0, "lrr": 2})
    assert family_of("conv3-taylor16") == "taylor" and family_of("(conv3-sw64)*2-attn") == "attn+sw"


def test_claims_are_exclusive_and_dead_owners_reclaimable(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    configs = tiny_grid(3)
    ids = db.add("s", configs)
    assert db.add("s", configs) == ids  # idempotent
    me, other = Owner(), Owner()
    first = db.claim(ids, me)
    second = db.claim(ids, other)
    assert first and second and first[0] != second[0]
    # A live owner's claim (other is this very process) is not taken over, however old its heartbeat.
    db.conn.execute("UPDATE runs SET heartbeat = 0 WHERE run_id = ?", (second[0],))
    third = db.claim(ids, me)
    assert third and third[0] not in (first[0], second[0])
    assert db.claim(ids, me) is None
    # A dead owner on this host (no such pid) is reclaimable at once ...
    db.conn.execute("UPDATE runs SET owner_pid = 2147480000, owner = 'x' WHERE run_id = ?", (first[0],))
    assert db.claim(ids, me)[0] == first[0]
    # ... another host's claim only once its heartbeat is stale.
    db.conn.execute("UPDATE runs SET owner_host = 'elsewhere', owner = 'y', heartbeat = ? WHERE run_id = ?",
                    (time.time(), second[0]))  # fmt: skip
    assert db.claim(ids, me, stale_after=60) is None
    assert db.claim(ids, me, stale_after=0.0)[0] == second[0]
    # Finishing is one statement and happens once.
    result = {"metrics": {"accuracy": 0.5}, "num_params": 1, "state_size": 2, "wall_time": 0.1, "device": "cpu",
              "versions": {}}  # fmt: skip
    assert db.finish(third[0], result) and not db.finish(third[0], result)
    db.fail(first[0], me, "boom")
    assert db.claim(ids, me, retry_failed=False, skip=[second[0]]) is None
    assert db.claim(ids, me, skip=[second[0]])[0] == first[0]
    assert_consistent(read_rows(tmp_path / "r.sqlite"))


def test_in_process_sweep_resumes_and_skips_finished(tmp_path):
    path = tmp_path / "r.sqlite"
    configs = tiny_grid(3)
    summary = run_sweep(configs[:2], path, name="t", workers=0, progress=False)
    assert (summary.finished, summary.already_done, summary.failed) == (2, 0, 0)
    summary = run_sweep(configs, path, name="t", workers=0, progress=False)
    assert (summary.finished, summary.already_done, summary.total) == (1, 2, 3)
    rows = read_rows(path)
    assert len(rows) == 3 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows.values())
    assert_consistent(rows)
    row = ResultsDB(path).rows(sweep="t")[0]
    assert row["metrics"]["slices"]["num_kv_pairs"].keys() == {"4"}
    assert row["config"]["spec"] == "conv3-attn" and row["versions"]["torch"] and row["device"].startswith("cpu")


def test_failed_run_is_recorded_then_retried(tmp_path):
    path = tmp_path / "r.sqlite"
    bad = RunConfig("conv3-attn", 16, 1e-3, task=TASK, epochs=1, mlp="bogus")  # fails inside build()
    summary = run_sweep([bad], path, name="t", workers=0, progress=False)
    assert summary.failed == 1
    (row,) = read_rows(path).values()
    assert row["status"] == "failed" and "Traceback" in row["error"]
    assert_consistent({row["run_id"]: row})
    summary = run_sweep([bad], path, name="t", workers=0, progress=False, retry_failed=False)
    assert summary.failed == 0 and summary.finished == 0


def test_sigkill_mid_sweep_loses_nothing_and_repeats_nothing(tmp_path):
    db = tmp_path / "r.sqlite"
    runs = 8
    proc = start_sweep(db, "--workers", "1", SWEEP_TEST_RUNS=str(runs))
    deadline = time.time() + 120
    done: dict[str, dict] = {}
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                rows = read_rows(db)
            except sqlite3.OperationalError:
                rows = {}
            done = {k: r for k, r in rows.items() if r["status"] == "done"}
            if done and any(r["status"] == "running" for r in rows.values()):
                break
        time.sleep(0.05)
    assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.communicate()}"
    workers = children_of(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert all(pid_gone(w) for w in workers), "a worker outlived its killed driver"

    rows = read_rows(db)
    assert_consistent(rows)
    finished_before = {k: (r["finished_at"], r["accuracy"]) for k, r in rows.items() if r["status"] == "done"}
    assert len(finished_before) >= 1 and len(finished_before) < runs
    held = [r for r in rows.values() if r["status"] == "running"]
    assert held and all(r["owner_pid"] == proc.pid for r in held)  # claims of the dead driver

    proc = start_sweep(db, "--workers", "1", SWEEP_TEST_RUNS=str(runs))
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert f"{len(finished_before)} already done, {runs - len(finished_before)} finished now" in out
    rows = read_rows(db)
    assert_consistent(rows)
    assert len(rows) == runs and all(r["status"] == "done" for r in rows.values())
    for run_id, (finished_at, accuracy) in finished_before.items():  # not lost, not repeated
        assert (rows[run_id]["finished_at"], rows[run_id]["accuracy"]) == (finished_at, accuracy)
        assert rows[run_id]["attempts"] == 1
    assert sum(r["attempts"] for r in rows.values()) == runs + len(held)  # only the killed claims ran again


def test_sigterm_hands_claims_back(tmp_path):
    db = tmp_path / "r.sqlite"
    proc = start_sweep(db, "--workers", "1", SWEEP_TEST_RUNS="4", SWEEP_TEST_EPOCHS="20")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if any(r["status"] == "running" for r in read_rows(db).values()) and children_of(proc.pid):
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    time.sleep(3.0)  # let the worker get into training
    workers = children_of(proc.pid)
    assert proc.poll() is None and workers
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in out
    assert all(pid_gone(w) for w in workers)
    rows = read_rows(db)
    assert_consistent(rows)
    assert not any(r["status"] == "running" for r in rows.values())  # released to pending, reclaimable at once
    assert any(r["status"] == "pending" and r["attempts"] == 1 for r in rows.values())


def test_two_concurrent_sweeps_run_each_config_once(tmp_path):
    db = tmp_path / "r.sqlite"
    runs = 8
    procs = [start_sweep(db, "--workers", "0", SWEEP_TEST_RUNS=str(runs), SWEEP_TEST_EPOCHS="2") for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    finished = [int(out.split(" already done, ")[1].split(" finished now")[0]) for out, _ in outs]
    assert sum(finished) == runs, outs  # every config executed exactly once across the two processes
    rows = read_rows(db)
    assert_consistent(rows)
    assert len(rows) == runs and all(r["status"] == "done" and r["attempts"] == 1 for r in rows.values())


def test_scales_share_the_paper_grid_except_quick():
    from mixerzoo.sweep import MEDIUM_EPOCHS, PAPER_LRS, learning_rates, scale_settings

    _, medium = script_grid(ROOT / "ablations" / "state_size_frontier.py", "medium")
    _, paper = script_grid(ROOT / "ablations" / "state_size_frontier.py", "paper")
    # Figure 2: attention 2 widths + Based 3 widths x 3 d' + sliding window 8 windows, at 4 learning rates.
    assert len(medium) == len(paper) == (2 + 9 + 8) * 4
    assert [(c.spec, c.d_model, c.lr) for c in medium] == [(c.spec, c.d_model, c.lr) for c in paper]
    assert {c.epochs for c in medium} == {MEDIUM_EPOCHS} and {c.epochs for c in paper} == {32}
    assert medium[0].task == paper[0].task == MQARTask()
    assert learning_rates("medium") == PAPER_LRS and scale_settings("medium")["test_batch_size"] == 256


def test_sweep_main_loads_script_and_validates(tmp_path, capsys):
    name, configs = script_grid(SCRIPT, "quick")
    assert name == "_sweep_grid:quick" and len(configs) == 6
    bad = tmp_path / "nogrid.py"
    bad.write_text("x = 1\n")
    with pytest.raises(AttributeError, match=r"grid\(scale\)"):
        sweep_main([str(bad), "--db", str(tmp_path / "r.sqlite")])
    with pytest.raises(FileNotFoundError):
        sweep_main([str(tmp_path / "missing.py")])
    with pytest.raises(SystemExit):
        sweep_main([str(SCRIPT), "--scale", "huge"])


def test_ray_engine_local_instance(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'mixerzoo[ray]'); CI installs it")
    path = tmp_path / "r.sqlite"
    configs = tiny_grid(3)
    try:
        summary = run_sweep(configs, path, name="ray", engine="ray", ray_address="local", workers=2, progress=False)
    finally:
        ray.shutdown()
    assert (summary.finished, summary.failed) == (3, 0)
    rows = read_rows(path)
    assert_consistent(rows)
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in rows.values())
    # Resuming through Ray skips what is done (and needs no cluster work).
    try:
        summary = run_sweep(configs, path, name="ray", engine="ray", ray_address="local", progress=False)
    finally:
        ray.shutdown()
    assert (summary.finished, summary.already_done) == (0, 3)


def test_ray_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'mixerzoo\[ray\]'"):
        run_sweep(tiny_grid(1), tmp_path / "r.sqlite", engine="ray", progress=False)
