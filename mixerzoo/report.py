"""Reports over a results database: a markdown table, plots (accuracy vs state size with each family's
Pareto frontier, accuracy per slice) and a CSV of every run.

A *point* is one model setting (spec, d_model and every other config field but the learning rate and
the seed). Its accuracy is the best over learning rates of the mean over seeds, as the BASED paper plots
"the best learning rate per state size" (Figure 2). Within a family, a point is on the Pareto frontier
when no point of that family with a state as small or smaller is at least as accurate.

Command line (wired as `mixerzoo report`)::

    mixerzoo report results.sqlite [--out DIR] [--csv FILE] [--sweep NAME]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FRONTIER_PNG = "accuracy_vs_state_size.png"
SLICES_PNG = "accuracy_per_slice.png"


def load_runs(db_path: str | os.PathLike, sweep: str | None = None) -> list[dict[str, Any]]:
    """Finished runs of the database (of one sweep if given), JSON columns decoded."""
    from mixerzoo.sweep import ResultsDB

    if not Path(db_path).is_file():
        raise FileNotFoundError(f"results database {db_path} not found; run a sweep first (mixerzoo sweep ...)")
    db = ResultsDB(db_path)
    try:
        if sweep is not None and sweep not in db.sweeps():
            raise ValueError(f"no sweep {sweep!r} in {db_path}; sweeps there: {', '.join(db.sweeps()) or 'none'}")
        return db.rows(sweep=sweep, status="done")
    finally:
        db.close()


def _slices(run: dict[str, Any]) -> dict[int, float]:
    per_slice = (run["metrics"] or {}).get("slices", {}).get("num_kv_pairs", {})
    return {int(k): float(v) for k, v in per_slice.items()}


def best_points(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per model setting: mean over seeds, then the best learning rate.

    Returns:
        Dicts with `family, spec, d_model, state_size, num_params, lr, accuracy, slices ({kv: acc}),
        seeds, runs, frontier`, sorted by family and state size; `frontier` marks the family's Pareto points.
    """
    groups: dict[str, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        key = {k: v for k, v in run["config"].items() if k not in ("lr", "seed")}
        groups[json.dumps([run["family"], key], sort_keys=True)][float(run["lr"])].append(run)
    points = []
    for by_lr in groups.values():
        candidates = []
        for lr, seeds in by_lr.items():
            accuracy = sum(r["accuracy"] for r in seeds) / len(seeds)
            slices: dict[int, list[float]] = defaultdict(list)
            for r in seeds:
                for k, v in _slices(r).items():
                    slices[k].append(v)
            candidates.append((accuracy, -lr, lr, seeds, {k: sum(v) / len(v) for k, v in sorted(slices.items())}))
        accuracy, _, lr, seeds, slices = max(candidates, key=lambda c: (c[0], c[1]))
        first = seeds[0]
        points.append(
            {
                "family": first["family"],
                "spec": first["spec"],
                "d_model": first["d_model"],
                "state_size": first["state_size"],
                "num_params": first["num_params"],
                "lr": lr,
                "accuracy": accuracy,
                "slices": slices,
                "seeds": len(seeds),
                "runs": sum(len(v) for v in by_lr.values()),
            }
        )
    points.sort(key=lambda p: (p["family"], p["state_size"], p["spec"], p["d_model"]))
    for family in {p["family"] for p in points}:
        frontier = pareto([p for p in points if p["family"] == family])
        for p in points:
            if p["family"] == family:
                p["frontier"] = any(p is q for q in frontier)
    return points


def pareto(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats: none has a state as small or smaller and accuracy as high or higher
    (ties on both broken by the order given). Sorted by state size.

    >>> pts = [dict(state_size=1, accuracy=0.2), dict(state_size=2, accuracy=0.1), dict(state_size=4, accuracy=0.9)]
    >>> [p["state_size"] for p in pareto(pts)]
    [1, 4]
    """
    out, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p["state_size"], -p["accuracy"])):
        if p["accuracy"] > best:
            out.append(p)
            best = p["accuracy"]
    return out


def markdown_table(points: Sequence[dict[str, Any]]) -> str:
    """The points as a markdown table: accuracy overall and per `num_kv_pairs` slice; ★ marks the frontier."""
    kvs = sorted({k for p in points for k in p["slices"]})
    header = ["family", "model", "d_model", "state size", "params", "best lr", "accuracy", *[f"kv={k}" for k in kvs]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for p in points:
        cells = [
            p["family"],
            f"`{p['spec']}`" + (" ★" if p.get("frontier") else ""),
            str(p["d_model"]),
            f"{p['state_size']:,}",
            f"{p['num_params']:,}",
            f"{p['lr']:.2g}",
            f"{p['accuracy']:.3f}",
            *[f"{p['slices'][k]:.3f}" if k in p["slices"] else "" for k in kvs],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(width: float, height: float) -> Any:
    # The object API with the Agg canvas: no pyplot, so no global backend is changed (safe in notebooks).
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "reports need matplotlib: pip install 'mixerzoo[plot]' (or pip install matplotlib)"
        ) from error

    figure = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(figure)
    return figure


def plot_frontier(points: Sequence[dict[str, Any]], path: str | os.PathLike, title: str | None = None) -> Path:
    """Accuracy against state size (log x), one colour per family, its Pareto frontier joined and ringed."""
    figure = _figure(7.5, 4.8)
    ax = figure.add_subplot()
    families = sorted({p["family"] for p in points})
    colors = _colors(len(families))
    for family, color in zip(families, colors):
        mine = [p for p in points if p["family"] == family]
        ax.scatter([p["state_size"] for p in mine], [p["accuracy"] for p in mine], color=color, alpha=0.45, s=28)
        front = pareto(mine)
        ax.plot(
            [p["state_size"] for p in front],
            [p["accuracy"] for p in front],
            color=color,
            marker="o",
            markersize=7,
            markerfacecolor="white",
            markeredgewidth=2,
            linewidth=1.8,
            label=f"{family} (frontier)",
        )
        for p in front:
            ax.annotate(
                _short(p),
                (p["state_size"], p["accuracy"]),
                textcoords="offset points",
                xytext=(5, -10),
                fontsize=6,
                color=color,
            )
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("recurrent state size (elements per sequence, at the longest test length)")
    ax.set_ylabel("MQAR accuracy (best lr)")
    ax.set_title(title or "MQAR accuracy vs state size")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def plot_slices(points: Sequence[dict[str, Any]], path: str | os.PathLike, title: str | None = None) -> Path:
    """Accuracy per `num_kv_pairs` slice, one panel per family, one line per model (darker = larger state)."""
    families = sorted({p["family"] for p in points})
    colors = dict(zip(families, _colors(len(families))))
    columns = min(3, len(families))
    rows = math.ceil(len(families) / columns)
    figure = _figure(4.6 * columns, 3.6 * rows)
    for index, family in enumerate(families):
        ax = figure.add_subplot(rows, columns, index + 1)
        mine = sorted((p for p in points if p["family"] == family), key=lambda p: p["state_size"])
        for rank, p in enumerate(mine):
            kvs = sorted(p["slices"])
            ax.plot(
                kvs,
                [p["slices"][k] for k in kvs],
                marker="o",
                markersize=3,
                color=colors[family],
                alpha=0.3 + 0.7 * (rank + 1) / len(mine),
                label=f"{_short(p)} ({p['state_size']:,})",
            )
        ax.set_xscale("log", base=2)
        kvs = sorted({k for p in mine for k in p["slices"]})
        ax.set_xticks(kvs, [str(k) for k in kvs])
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(family, fontsize=10)
        ax.set_xlabel("key-value pairs")
        ax.set_ylabel("accuracy")
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6, loc="lower left")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def _short(point: dict[str, Any]) -> str:
    """A plot label: the spec without the leading short conv of MQAR models, and the width."""
    spec = point["spec"]
    spec = spec[len("conv3-") :] if spec.startswith("conv3-") and "(" not in spec else spec
    return f"{spec} d={point['d_model']}"


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def write_csv(runs: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Every run, one row each: identity, accuracy overall and per slice, size, time, device, versions, config."""
    kvs = sorted({k for r in runs for k in _slices(r)})
    fields = ["run_id", "family", "spec", "d_model", "lr", "seed", "accuracy", *[f"kv_{k}" for k in kvs]]
    fields += ["best_accuracy", "epochs", "num_params", "state_size", "wall_time", "device", "versions", "config"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in runs:
            slices = _slices(r)
            writer.writerow(
                {
                    **{k: r[k] for k in ("run_id", "family", "spec", "d_model", "lr", "seed", "accuracy")},
                    **{f"kv_{k}": slices.get(k, "") for k in kvs},
                    "best_accuracy": r["metrics"].get("best_accuracy", ""),
                    "epochs": r["metrics"].get("epochs", ""),
                    **{k: r[k] for k in ("num_params", "state_size", "wall_time", "device")},
                    "versions": json.dumps(r["versions"], sort_keys=True),
                    "config": json.dumps(r["config"], sort_keys=True),
                }
            )
    return path


def report(
    db_path: str | os.PathLike,
    out_dir: str | os.PathLike = "report",
    *,
    sweep: str | None = None,
    csv_path: str | os.PathLike | None = None,
    quiet: bool = False,
) -> str:
    """Print a markdown table of a results database and write plots, the table and a CSV to `out_dir`.

    Args:
        db_path: the SQLite results database.
        out_dir: the folder for `accuracy_vs_state_size.png`, `accuracy_per_slice.png`, `report.md` and
            `runs.csv` (created).
        sweep: only the runs of this sweep (e.g. `"state_size_frontier:quick"`); default every run.
        csv_path: where to write the CSV of every run instead of `out_dir/runs.csv`.
        quiet: do not print the table.

    Returns:
        The markdown report.
    """
    runs = load_runs(db_path, sweep)
    title = f"sweep {sweep}" if sweep else f"{Path(db_path).name}"
    if not runs:
        text = f"# {title}\n\nno finished runs yet in {db_path}"
        if not quiet:
            print(text)
        return text
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = best_points(runs)
    frontier_png = plot_frontier(points, out / FRONTIER_PNG, title=f"MQAR accuracy vs state size — {title}")
    slices_png = plot_slices(points, out / SLICES_PNG, title=f"MQAR accuracy per slice — {title}")
    csv_file = write_csv(runs, csv_path or out / "runs.csv")
    text = (
        f"# {title}\n\n{len(runs)} finished runs, {len(points)} model settings "
        f"(best learning rate each; ★ = on its family's accuracy/state-size Pareto frontier)\n\n"
        f"{markdown_table(points)}\n\nplots: {frontier_png}, {slices_png}\nruns: {csv_file}\n"
    )
    (out / "report.md").write_text(text)
    if not quiet:
        print(text)
    return text


def report_main(argv: Sequence[str] | None = None) -> int:
    """`mixerzoo report DB [--out DIR] [--csv FILE] [--sweep NAME]`."""
    parser = argparse.ArgumentParser(
        prog="mixerzoo report",
        description="Print the best-lr table of a results database and write plots and a CSV.",
    )
    parser.add_argument("db", help="SQLite results database written by mixerzoo sweep")
    parser.add_argument("--out", default=None, help="folder for plots, report.md and runs.csv (default: <db>_report)")
    parser.add_argument("--csv", default=None, help="write the CSV of every run here (default: OUT/runs.csv)")
    parser.add_argument("--sweep", default=None, help="only this sweep's runs, e.g. feature_maps:quick")
    args = parser.parse_args(argv)
    out = args.out or f"{Path(args.db).with_suffix('')}_report"
    report(args.db, out, sweep=args.sweep, csv_path=args.csv)
    return 0
