"""Reports: best lr per point, Pareto frontiers, table, plots and CSV; the ablation scripts' grids."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

import mixerzoo
from mixerzoo.report import best_points, load_runs, markdown_table, pareto, report, report_main
from mixerzoo.sweep import ResultsDB, grid, scale_settings, script_grid, sweep_main
from mixerzoo.tasks.mqar import PAPER_TRAIN_SEGMENTS, MQARTask, Segment

ROOT = Path(__file__).resolve().parent.parent
ABLATIONS = sorted((ROOT / "ablations").glob("*.py"))
TASK = MQARTask(vocab_size=128, train_segments=(Segment(64, 4, 64),), test_segments=(Segment(64, 4, 32),))


def fake_result(accuracy: float, state_size: int) -> dict:
    return {
        "metrics": {"accuracy": accuracy, "slices": {"num_kv_pairs": {"4": accuracy, "16": accuracy / 2}}},
        "num_params": 1000,
        "state_size": state_size,
        "wall_time": 1.0,
        "device": "cpu",
        "versions": {"torch": "x"},
    }


@pytest.fixture
def db_path(tmp_path) -> Path:
    """Two families; Based has two lrs and two seeds per point; one Based point is off the frontier."""
    path = tmp_path / "r.sqlite"
    db = ResultsDB(path)
    accuracy = {  # (spec, lr, seed) -> accuracy
        ("conv3-taylor4", 1e-3, 0): 0.2, ("conv3-taylor4", 1e-3, 1): 0.4,  # mean 0.3
        ("conv3-taylor4", 1e-2, 0): 0.5, ("conv3-taylor4", 1e-2, 1): 0.3,  # mean 0.4 <- best
        ("conv3-taylor8", 1e-3, 0): 0.9, ("conv3-taylor8", 1e-3, 1): 0.8,  # mean 0.85 <- best
        ("conv3-taylor8", 1e-2, 0): 0.1, ("conv3-taylor8", 1e-2, 1): 0.1,
        ("conv3-taylor16", 1e-3, 0): 0.7, ("conv3-taylor16", 1e-3, 1): 0.7,  # bigger state, worse: off frontier
        ("conv3-taylor16", 1e-2, 0): 0.6, ("conv3-taylor16", 1e-2, 1): 0.6,
    }  # fmt: skip
    states = {"conv3-taylor4": 300, "conv3-taylor8": 1600, "conv3-taylor16": 5000}
    configs = grid(list(states), [32], [1e-3, 1e-2], seeds=[0, 1], task=TASK, family="Based")
    configs += grid(["conv3-sw8", "conv3-sw16"], [32], [1e-2], task=TASK, family="Sliding window")
    ids = db.add("demo:quick", configs)
    db.add("other:quick", configs[:2])
    for run_id, config in zip(ids, configs):
        if config.family == "Based":
            db.finish(run_id, fake_result(accuracy[(config.spec, config.lr, config.seed)], states[config.spec]))
        elif config.spec == "conv3-sw8":
            db.finish(run_id, fake_result(0.05, 640))
        # conv3-sw16 stays pending: reports show finished runs only
    db.close()
    return path


def test_best_points_and_frontier(db_path):
    runs = load_runs(db_path, sweep="demo:quick")
    assert len(runs) == 13
    points = {p["spec"]: p for p in best_points(runs)}
    assert points["conv3-taylor4"]["lr"] == 1e-2 and points["conv3-taylor4"]["accuracy"] == pytest.approx(0.4)
    assert points["conv3-taylor8"]["lr"] == 1e-3 and points["conv3-taylor8"]["accuracy"] == pytest.approx(0.85)
    assert points["conv3-taylor8"]["seeds"] == 2 and points["conv3-taylor8"]["runs"] == 4
    assert points["conv3-taylor8"]["slices"] == {4: pytest.approx(0.85), 16: pytest.approx(0.425)}
    assert [p["frontier"] for p in (points[s] for s in ("conv3-taylor4", "conv3-taylor8", "conv3-taylor16"))] == [
        True,
        True,
        False,
    ]
    assert points["conv3-sw8"]["frontier"] and points["conv3-sw8"]["family"] == "Sliding window"
    table = markdown_table(list(points.values()))
    assert "| Based | `conv3-taylor8` ★ | 32 | 1,600 | 1,000 | 0.001 | 0.850 | 0.850 | 0.425 |" in table
    assert "`conv3-taylor16` |" in table  # no star
    assert pareto([]) == []


def test_report_writes_table_plots_and_csv(db_path, tmp_path, capsys):
    out = tmp_path / "out"
    text = report(db_path, out, sweep="demo:quick")
    assert "13 finished runs, 4 model settings" in text and text in capsys.readouterr().out
    for name in ("accuracy_vs_state_size.png", "accuracy_per_slice.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert (out / "report.md").read_text() == text
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and {"run_id", "accuracy", "kv_4", "kv_16", "state_size", "config"} <= set(rows[0])
    # The CLI: another CSV path, every sweep, default folder.
    assert report_main([str(db_path), "--out", str(tmp_path / "cli"), "--csv", str(tmp_path / "all.csv")]) == 0
    assert (tmp_path / "cli" / "accuracy_vs_state_size.png").is_file()
    with open(tmp_path / "all.csv") as f:
        assert len(list(csv.DictReader(f))) == 13


def test_report_errors_and_empty(tmp_path, db_path):
    with pytest.raises(FileNotFoundError, match="run a sweep first"):
        report(tmp_path / "missing.sqlite", tmp_path / "o")
    with pytest.raises(ValueError, match="demo:quick"):
        report(db_path, tmp_path / "o", sweep="nope")
    empty = tmp_path / "empty.sqlite"
    ResultsDB(empty).close()
    assert "no finished runs" in report(empty, tmp_path / "o", quiet=True)


def test_family_is_per_sweep(tmp_path):
    path = tmp_path / "r.sqlite"
    db = ResultsDB(path)
    (run_id,) = db.add("a", grid(["conv3-taylor4"], [32], [1e-2], task=TASK, family="Feature maps"))
    assert db.add("b", grid(["conv3-taylor4"], [32], [1e-2], task=TASK, family="Based d=32")) == [run_id]
    db.finish(run_id, fake_result(0.5, 300))
    assert [r["family"] for r in db.rows(sweep="a")] == ["Feature maps"]
    assert [r["family"] for r in db.rows(sweep="b")] == ["Based d=32"]


def test_sweep_cli_end_to_end_prints_table_and_writes_png(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SWEEP_TEST_RUNS", "2")
    monkeypatch.setenv("SWEEP_TEST_EPOCHS", "1")
    out = tmp_path / "out"
    code = sweep_main([str(ROOT / "tests" / "_sweep_grid.py"), "--db", str(tmp_path / "r.sqlite"), "--workers", "0",
                       "--out", str(out), "--no-progress"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "2 runs, 0 already done, 2 finished now" in printed
    assert "| attn | `conv3-attn`" in printed
    assert (out / "accuracy_vs_state_size.png").is_file() and (out / "runs.csv").is_file()


@pytest.mark.parametrize("script", ABLATIONS, ids=[p.stem for p in ABLATIONS])
def test_ablation_grids(script):
    """Every ablation script defines grid(scale) for both scales; its quick models build, and its paper
    runs use the paper's data and recipe."""
    name, quick = script_grid(script, "quick")
    assert name == f"{script.stem}:quick" and 4 <= len(quick) <= 16
    assert all(c.task == scale_settings("quick")["task"] and c.mlp == "none" and c.n_heads == 1 for c in quick)
    assert len({c.run_id for c in quick}) == len(quick)
    for spec, d in {(c.spec, c.d_model) for c in quick}:
        model = mixerzoo.build(spec, d, 128, n_heads=1, mlp="none", max_len=64)
        assert model.state_size(64) > 0
    _, paper = script_grid(script, "paper")
    assert len(paper) > len(quick)
    assert all(c.task.train_segments == PAPER_TRAIN_SEGMENTS and c.epochs == 32 for c in paper)
    assert all(mixerzoo.canon(c.spec) for c in paper)
    with pytest.raises(ValueError, match="unknown scale"):
        script_grid(script, "huge")


def test_scripts_print_help():
    # `python ablations/x.py --help` works without running anything.
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, str(ABLATIONS[0]), "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "--scale" in done.stdout
