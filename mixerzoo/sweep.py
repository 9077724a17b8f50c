"""Sweeps: a grid of `RunConfig`s, run by worker processes (or Ray), recorded in a results database.

The database (SQLite, WAL mode) has one row per run, keyed by `RunConfig.run_id` (a hash of the full
resolved config), holding the config as JSON, metrics per slice, parameters, state size, wall time,
versions and device. It survives anything:

- a finished run is written in one `UPDATE` (status, metrics and all), so a kill at any moment loses
  no finished run and leaves no half-written one; re-running a sweep skips finished runs;
- a run is claimed in a `BEGIN IMMEDIATE` transaction before it starts, so two sweep processes on one
  database never run the same config twice; the claim records the owner's pid, host, process start
  time and a heartbeat, and a claim by a dead owner (same host: its pid is gone; another host: its
  heartbeat is older than `stale_after` seconds) is taken over;
- only the driver process writes the database; workers (one per GPU, or N on the CPU) and Ray tasks
  just train and return results.

Example (trains four models; the tests run sweeps like it)::

    configs = grid(["conv3-taylor16", "conv3-attn"], d_models=[64], lrs=[1e-3, 3e-3])
    run_sweep(configs, "results.sqlite", name="demo")

Command line (wired as `mixerzoo sweep`)::

    mixerzoo sweep ablations/feature_maps.py --scale quick --db results.sqlite [--workers N]
        [--engine local|ray] [--ray-address ADDR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import multiprocessing as mp
import os
import queue
import signal
import socket
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixerzoo.tasks.mqar import MQARTask, Segment
from mixerzoo.train import RunConfig

DEFAULT_DB = "results.sqlite"
HEARTBEAT_INTERVAL = 10.0  # seconds between heartbeats of a driver's running claims
STALE_AFTER = 120.0  # a claim from another host whose heartbeat is older than this is taken over

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,          -- RunConfig.run_id: hash of the resolved config
    status      TEXT NOT NULL,             -- pending | running | done | failed
    config      TEXT NOT NULL,             -- resolved config, JSON
    spec        TEXT NOT NULL,             -- canonical spec
    family      TEXT,                      -- display group (RunConfig.family or derived from the spec)
    d_model     INTEGER NOT NULL,
    lr          REAL NOT NULL,
    seed        INTEGER NOT NULL,
    accuracy    REAL,                      -- overall test accuracy
    metrics     TEXT,                      -- JSON: accuracy, slices, best_accuracy, train_loss, epochs, ...
    num_params  INTEGER,
    state_size  INTEGER,                   -- recurrent-state elements per sequence at the longest test L
    wall_time   REAL,                      -- seconds
    device      TEXT,
    versions    TEXT,                      -- JSON
    error       TEXT,                      -- traceback of the last failure
    attempts    INTEGER NOT NULL DEFAULT 0,
    owner       TEXT,                      -- host:pid:token of the claiming driver
    owner_host  TEXT,
    owner_pid   INTEGER,
    owner_start TEXT,                      -- the owner's process start time (guards against pid reuse)
    heartbeat   REAL,                      -- unix time of the owner's last heartbeat
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS sweep_runs (  -- which runs a sweep holds (a run can serve several sweeps)
    sweep    TEXT NOT NULL,
    run_id   TEXT NOT NULL REFERENCES runs(run_id),
    position INTEGER NOT NULL,
    family   TEXT,                         -- the run's plot group in this sweep
    PRIMARY KEY (sweep, run_id)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""


# ----------------------------------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------------------------------


def grid(
    specs: Iterable[str],
    d_models: Iterable[int],
    lrs: Iterable[float],
    seeds: Iterable[int] = (0,),
    *,
    family: str | None = None,
    **settings: Any,
) -> list[RunConfig]:
    """The product `specs × d_models × lrs × seeds` as `RunConfig`s sharing `settings`.

    Args:
        specs: spec strings, e.g. `["conv3-taylor16", "conv3-attn"]`.
        d_models: model widths.
        lrs: learning rates (the report keeps the best per point).
        seeds: run seeds (the report averages over them).
        family: the plot group of these runs (default: derived from the spec).
        **settings: any other `RunConfig` field: `task=`, `epochs=`, `train_batch_size=`, ...

    Example:
        >>> from mixerzoo.tasks.mqar import MQARTask
        >>> configs = grid(["conv3-attn"], [32, 64], [1e-3, 1e-2], epochs=4)
        >>> [(c.d_model, c.lr) for c in configs]
        [(32, 0.001), (32, 0.01), (64, 0.001), (64, 0.01)]
    """
    return [
        RunConfig(spec=spec, d_model=d, lr=float(lr), seed=seed, family=family, **settings)
        for spec, d, lr, seed in itertools.product(specs, d_models, lrs, seeds)
    ]


# ----------------------------------------------------------------------------------------------------
# The results database
# ----------------------------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The start time of `pid` (Linux /proc, clock ticks since boot), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start is not None and (now := _process_start(pid)) is not None and now != start:
        return False  # the pid was reused by another process
    return True


def host_key() -> str:
    """This machine and pid namespace: hostname, boot id and pid-namespace id, so that a pid is only ever
    checked for liveness where it means the same process (containers can share a hostname or a kernel)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8])
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]"))
    return "/".join(parts)


@dataclass(frozen=True)
class Owner:
    """The driver process that claims runs: host key, pid, process start time and a per-sweep token."""

    host: str = field(default_factory=host_key)
    pid: int = field(default_factory=os.getpid)
    start: str | None = field(default_factory=lambda: _process_start(os.getpid()))
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


class ResultsDB:
    """The SQLite results database: one row per run, claimed transactionally.

    Args:
        path: the database file (created with its tables if missing).
        timeout: seconds to wait for another process's write lock before failing.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.conn = self._connect()
        with self.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); put the database on a local disk")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` … `COMMIT` (rolled back on error): takes the write lock up front."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- sweep membership -----------------------------------------------------------------------

    def add(self, sweep: str, configs: Sequence[RunConfig]) -> list[str]:
        """Register `configs` under `sweep` (pending unless already present); returns their run ids in order."""
        rows = []
        for config in configs:
            resolved = config.resolved()
            rows.append((config.run_id, resolved, config))
        now = time.time()
        with self.transaction() as conn:
            (start,) = conn.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM sweep_runs WHERE sweep = ?", (sweep,)
            ).fetchone()
            for position, (run_id, resolved, config) in enumerate(rows, start):
                conn.execute(
                    "INSERT OR IGNORE INTO runs (run_id, status, config, spec, family, d_model, lr, seed, created_at) "
                    "VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        json.dumps(resolved, sort_keys=True),
                        resolved["spec"],
                        config.family or family_of(resolved["spec"]),
                        config.d_model,
                        float(config.lr),
                        config.seed,
                        now,
                    ),
                )
                conn.execute(
                    "INSERT INTO sweep_runs (sweep, run_id, position, family) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (sweep, run_id) DO UPDATE SET family = excluded.family",
                    (sweep, run_id, position, config.family or family_of(resolved["spec"])),
                )
        return [run_id for run_id, _, _ in rows]

    # -- claims -----------------------------------------------------------------------------------

    def _claimable(self, row: sqlite3.Row, owner: Owner, stale_after: float, retry_failed: bool) -> bool:
        status = row["status"]
        if status == "pending":
            return True
        if status == "failed":
            return retry_failed
        if status != "running" or row["owner"] == owner.name:
            return False
        if row["owner_host"] == owner.host:
            return not _pid_alive(row["owner_pid"], row["owner_start"])
        return row["heartbeat"] is None or time.time() - row["heartbeat"] > stale_after

    def claim(
        self,
        run_ids: Sequence[str],
        owner: Owner,
        *,
        stale_after: float = STALE_AFTER,
        skip: Iterable[str] = (),
        retry_failed: bool = True,
    ) -> tuple[str, RunConfig] | None:
        """Atomically take the first claimable run of `run_ids` (pending, failed, or held by a dead owner).

        Returns:
            `(run_id, resolved config)`, or None when nothing is left to claim.
        """
        wanted = set(run_ids)
        skip = set(skip)
        with self.transaction() as conn:
            rows = {
                row["run_id"]: row
                for row in conn.execute(
                    "SELECT run_id, status, config, owner, owner_host, owner_pid, owner_start, heartbeat "
                    "FROM runs WHERE status != 'done'"
                )
                if row["run_id"] in wanted and row["run_id"] not in skip
            }
            for run_id in run_ids:
                row = rows.get(run_id)
                if row is None or not self._claimable(row, owner, stale_after, retry_failed):
                    continue
                now = time.time()
                conn.execute(
                    "UPDATE runs SET status = 'running', owner = ?, owner_host = ?, owner_pid = ?, owner_start = ?, "
                    "heartbeat = ?, started_at = ?, attempts = attempts + 1 WHERE run_id = ?",
                    (owner.name, owner.host, owner.pid, owner.start, now, now, run_id),
                )
                return run_id, RunConfig.from_dict(json.loads(row["config"]))
        return None

    def heartbeat(self, owner: Owner) -> None:
        """Refresh the heartbeat of every run `owner` holds."""
        self.conn.execute(
            "UPDATE runs SET heartbeat = ? WHERE owner = ? AND status = 'running'", (time.time(), owner.name)
        )

    def finish(self, run_id: str, result: dict[str, Any]) -> bool:
        """Record a finished run in one statement; returns False if another process already finished it."""
        metrics = result["metrics"]
        cursor = self.conn.execute(
            "UPDATE runs SET status = 'done', accuracy = ?, metrics = ?, num_params = ?, state_size = ?, "
            "wall_time = ?, device = ?, versions = ?, error = NULL, heartbeat = NULL, finished_at = ? "
            "WHERE run_id = ? AND status != 'done'",
            (
                float(metrics["accuracy"]),
                json.dumps(metrics, sort_keys=True),
                int(result["num_params"]),
                int(result["state_size"]),
                float(result["wall_time"]),
                result["device"],
                json.dumps(result["versions"], sort_keys=True),
                time.time(),
                run_id,
            ),
        )
        return cursor.rowcount == 1

    def fail(self, run_id: str, owner: Owner, error: str) -> None:
        """Mark a run of `owner` failed with its traceback (a later sweep retries it)."""
        self.conn.execute(
            "UPDATE runs SET status = 'failed', error = ?, heartbeat = NULL WHERE run_id = ? AND owner = ? "
            "AND status = 'running'",
            (error, run_id, owner.name),
        )

    def release(self, run_ids: Iterable[str], owner: Owner) -> None:
        """Hand unfinished claims of `owner` back (status pending), e.g. on Ctrl-C."""
        with self.transaction() as conn:
            for run_id in run_ids:
                conn.execute(
                    "UPDATE runs SET status = 'pending', owner = NULL, heartbeat = NULL "
                    "WHERE run_id = ? AND owner = ? AND status = 'running'",
                    (run_id, owner.name),
                )

    # -- reading ------------------------------------------------------------------------------------

    def status_counts(self, run_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(run_ids)
        counts: dict[str, int] = {}
        for row in self.conn.execute("SELECT run_id, status FROM runs"):
            if row["run_id"] in wanted:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def rows(self, sweep: str | None = None, status: str | None = "done") -> list[dict[str, Any]]:
        """Runs as dicts (JSON columns decoded), optionally only those of `sweep` (with the family that sweep
        gave them) and/or with `status`."""
        query = "SELECT r.* FROM runs r"
        args: list[Any] = []
        if sweep is not None:  # the family this sweep gave the run, which may differ from the first sweep's
            query = (
                "SELECT r.*, COALESCE(s.family, r.family) AS sweep_family FROM runs r "
                "JOIN sweep_runs s ON s.run_id = r.run_id AND s.sweep = ?"
            )
            args.append(sweep)
        if status is not None:
            query += " WHERE r.status = ?"
            args.append(status)
        query += " ORDER BY r.created_at, r.run_id"
        out = []
        for row in self.conn.execute(query, args):
            item = dict(row)
            if "sweep_family" in item:
                item["family"] = item.pop("sweep_family")
            for key in ("config", "metrics", "versions"):
                item[key] = json.loads(item[key]) if item[key] else None
            out.append(item)
        return out

    def sweeps(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT DISTINCT sweep FROM sweep_runs ORDER BY sweep")]


def family_of(spec: str) -> str:
    """A plot group derived from a spec: its non-convolution layer kinds, without numbers or options.

    >>> family_of("conv3-taylor16"), family_of("conv3-sw64[heads=2]"), family_of("(conv3-attn)*2-taylor8")
    ('taylor', 'sw', 'attn+taylor')
    """
    import mixerzoo

    kinds = sorted({layer.name for layer in mixerzoo.parse(spec)} - {"conv"})
    return "+".join(kinds) or "conv"


# ----------------------------------------------------------------------------------------------------
# Engines: in-process, local worker processes, Ray
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    run_id: str
    ok: bool
    payload: Any  # the RunResult dict, or a traceback string


def _execute(config_dict: dict[str, Any], device: str | None, progress: bool, position: int) -> dict[str, Any]:
    from mixerzoo.train import train

    return train(RunConfig.from_dict(config_dict), device=device, progress=progress, position=position).to_dict()


class _InProcess:
    """Runs each config in the driver process (`--workers 0`): simplest to debug."""

    def __init__(self, device: str | None, progress: bool) -> None:
        self.device, self.progress = device, progress
        self.pending: list[tuple[str, dict[str, Any]]] = []

    @property
    def capacity(self) -> int:
        return 1 - len(self.pending)

    def submit(self, run_id: str, config: dict[str, Any]) -> None:
        self.pending.append((run_id, config))

    def wait(self) -> list[_Outcome]:
        run_id, config = self.pending.pop()
        try:
            return [_Outcome(run_id, True, _execute(config, self.device, self.progress, 1))]
        except Exception:
            return [_Outcome(run_id, False, traceback.format_exc())]

    def close(self, force: bool = False) -> None:
        pass


def _set_parent_death_signal() -> None:
    """Linux: get SIGKILLed when the driver dies, so a killed sweep leaves no orphan training."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(index: int, device: str, threads: int, tasks: Any, results: Any, parent: int, progress: bool) -> None:
    _set_parent_death_signal()
    if os.getppid() != parent:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    import torch

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    else:
        torch.set_num_threads(threads)
    while True:
        try:
            item = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if item is None:
            return
        run_id, config = item
        try:
            results.put((index, run_id, True, _execute(config, device, progress, index + 1)))
        except Exception:
            results.put((index, run_id, False, traceback.format_exc()))


class _LocalPool:
    """N spawned worker processes, each with its own task queue and device, one run at a time."""

    def __init__(self, devices: Sequence[str], threads: int, progress: bool) -> None:
        self.ctx = mp.get_context("spawn")
        self.results = self.ctx.Queue()
        self.devices, self.threads, self.progress = list(devices), threads, progress
        self.workers: list[Any] = [None] * len(devices)
        self.queues: list[Any] = [None] * len(devices)
        self.busy: list[str | None] = [None] * len(devices)
        for i in range(len(devices)):
            self._spawn(i)

    def _spawn(self, i: int) -> None:
        self.queues[i] = self.ctx.Queue()
        self.workers[i] = self.ctx.Process(
            target=_worker_main,
            args=(i, self.devices[i], self.threads, self.queues[i], self.results, os.getpid(), self.progress),
            daemon=True,
            name=f"mixerzoo-sweep-worker-{i}",
        )
        self.workers[i].start()

    @property
    def capacity(self) -> int:
        return sum(b is None for b in self.busy)

    def submit(self, run_id: str, config: dict[str, Any]) -> None:
        i = self.busy.index(None)
        self.busy[i] = run_id
        self.queues[i].put((run_id, config))

    def wait(self) -> list[_Outcome]:
        while True:
            try:
                index, run_id, ok, payload = self.results.get(timeout=1.0)
            except queue.Empty:
                dead = []
                for i, worker in enumerate(self.workers):
                    if self.busy[i] is not None and not worker.is_alive():
                        error = f"worker {i} ({self.devices[i]}) died with exit code {worker.exitcode} during the run"
                        dead.append(_Outcome(self.busy[i], False, error))
                        self.busy[i] = None
                        self._spawn(i)
                if dead:
                    return dead
                continue
            self.busy[index] = None
            return [_Outcome(run_id, ok, payload)]

    def close(self, force: bool = False) -> None:
        for q in self.queues:
            with contextlib.suppress(Exception):
                q.put(None)
        deadline = time.time() + (0 if force else 5)
        for worker in self.workers:
            worker.join(timeout=max(0.0, deadline - time.time()))
            if worker.is_alive():
                worker.kill()
                worker.join()


def _ray_run(config: dict[str, Any]) -> dict[str, Any]:
    import torch

    return _execute(config, "cuda" if torch.cuda.is_available() else "cpu", False, 0)


class _RayPool:
    """Runs configs as Ray tasks (1 GPU each where the cluster has GPUs); the driver writes the database."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        try:
            import ray
        except ImportError as error:
            raise ImportError(
                "--engine ray needs Ray, which is not installed: pip install 'mixerzoo[ray]' (or pip install ray), "
                "or use --engine local"
            ) from error
        self.ray = ray
        if not ray.is_initialized():
            root = str(Path(__file__).resolve().parent.parent)
            if address in (None, "local"):
                # A fresh local instance; its workers import mixerzoo from this checkout.
                path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
                ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        self.options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
        self.slots = workers or gpus or max(1, int(resources.get("CPU", 1)))
        self.remote = ray.remote(_ray_run).options(**self.options, max_retries=0)
        self.refs: dict[Any, str] = {}

    @property
    def capacity(self) -> int:
        return self.slots - len(self.refs)

    def submit(self, run_id: str, config: dict[str, Any]) -> None:
        self.refs[self.remote.remote(config)] = run_id

    def wait(self) -> list[_Outcome]:
        done, _ = self.ray.wait(list(self.refs), num_returns=1)
        outcomes = []
        for ref in done:
            run_id = self.refs.pop(ref)
            try:
                outcomes.append(_Outcome(run_id, True, self.ray.get(ref)))
            except Exception:
                outcomes.append(_Outcome(run_id, False, traceback.format_exc()))
        return outcomes

    def close(self, force: bool = False) -> None:
        for ref in self.refs:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)


def _local_devices(workers: int | None, device: str | None) -> tuple[list[str], int]:
    """Worker devices and CPU threads per worker: one worker per GPU, or `workers` on the CPU."""
    import torch

    cores = os.cpu_count() or 1
    if (device is None or device.startswith("cuda")) and torch.cuda.is_available():
        count = torch.cuda.device_count()
        n = workers or count
        return [f"cuda:{i % count}" for i in range(n)], max(1, cores // n)
    n = workers or min(cores, 8)  # small MQAR models use one thread better than several
    return ["cpu"] * n, max(1, cores // n)


# ----------------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    """What `run_sweep` did: runs in the sweep, finished before it started, finished now, failed now,
    and still held by other live processes when it stopped."""

    name: str
    total: int
    already_done: int = 0
    finished: int = 0
    failed: int = 0
    elsewhere: int = 0
    run_ids: list[str] = field(default_factory=list)


class _Heartbeat(threading.Thread):
    def __init__(self, path: Path, owner: Owner, interval: float) -> None:
        super().__init__(daemon=True, name="mixerzoo-sweep-heartbeat")
        self.path, self.owner, self.interval = path, owner, interval
        self.stop = threading.Event()

    def run(self) -> None:
        db = ResultsDB(self.path)
        try:
            while not self.stop.wait(self.interval):
                with contextlib.suppress(sqlite3.Error):
                    db.heartbeat(self.owner)
        finally:
            db.close()


def run_sweep(
    configs: Sequence[RunConfig],
    db_path: str | os.PathLike = DEFAULT_DB,
    *,
    name: str = "sweep",
    workers: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    device: str | None = None,
    progress: bool = True,
    retry_failed: bool = True,
    stale_after: float = STALE_AFTER,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
) -> SweepSummary:
    """Run every config of a sweep that the database has not finished, and record each result.

    Args:
        configs: the runs (duplicates after canonicalisation run once).
        db_path: the SQLite results database (created if missing).
        name: the sweep's name in the database (the report can filter on it).
        workers: worker processes (`engine="local"`: default one per GPU, else one per CPU core up to 8, each
            with `cores // workers` threads; 0 runs in this process)
            or concurrent Ray tasks (default: the cluster's GPUs, else its CPUs).
        engine: `"local"` (worker processes on this machine) or `"ray"`.
        ray_address: the Ray cluster to join (`ray.init(address=...)`); None or `"local"` starts a local one.
        device: the device of local workers (`"cpu"`, `"cuda"`); default CUDA when available.
        progress: tqdm bars for the sweep and for each run.
        retry_failed: also retry runs that failed in an earlier sweep (each at most once per call).
        stale_after: seconds after which another host's claim without a heartbeat is taken over.
        heartbeat_interval: seconds between heartbeats of this driver's claims.

    Returns:
        A `SweepSummary`.
    """
    from tqdm.auto import tqdm

    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; use 'local' or 'ray'")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    db = ResultsDB(db_path)
    owner = Owner()
    run_ids = list(dict.fromkeys(db.add(name, configs)))
    counts = db.status_counts(run_ids)
    summary = SweepSummary(name=name, total=len(run_ids), already_done=counts.get("done", 0), run_ids=run_ids)

    def make_pool() -> Any:  # started on the first claim: a finished sweep spawns no worker and joins no cluster
        if engine == "ray":
            return _RayPool(ray_address, workers)
        if workers == 0:
            return _InProcess(device, progress)
        devices, threads = _local_devices(workers, device)
        return _LocalPool(devices, threads, progress)

    pool: Any = None
    bar = tqdm(
        total=len(run_ids),
        initial=summary.already_done,
        desc=f"sweep {name}",
        position=0,
        disable=not progress,
        dynamic_ncols=True,
    )
    heartbeat = _Heartbeat(db.path, owner, heartbeat_interval)
    heartbeat.start()
    in_flight: set[str] = set()
    attempted: set[str] = set()
    previous = _terminate_as_interrupt()
    interrupted = False
    try:
        while True:
            while pool is None or pool.capacity > 0:
                claimed = db.claim(run_ids, owner, stale_after=stale_after, skip=attempted, retry_failed=retry_failed)
                if claimed is None:
                    break
                run_id, config = claimed
                attempted.add(run_id)
                in_flight.add(run_id)
                pool = pool or make_pool()
                pool.submit(run_id, config.to_dict())
            if not in_flight:
                break
            for outcome in pool.wait():
                in_flight.discard(outcome.run_id)
                if outcome.ok:
                    db.finish(outcome.run_id, outcome.payload)
                    summary.finished += 1
                    bar.update()
                    bar.set_postfix(last_acc=f"{outcome.payload['metrics']['accuracy']:.3f}")
                else:
                    db.fail(outcome.run_id, owner, str(outcome.payload))
                    summary.failed += 1
                    tqdm.write(f"run {outcome.run_id} failed:\n{outcome.payload}", file=sys.stderr)
    except BaseException:
        # Ctrl-C / SIGTERM / error: hand the unfinished claims back so another sweep can take them now.
        interrupted = True
        with contextlib.suppress(Exception):
            db.release(in_flight, owner)
        raise
    finally:
        _restore_terminate(previous)
        heartbeat.stop.set()
        if pool is not None:
            pool.close(force=interrupted)
        bar.close()
        summary.elsewhere = db.status_counts(run_ids).get("running", 0)
        db.close()
    return summary


def _terminate_as_interrupt() -> Any:
    """Turn SIGTERM into KeyboardInterrupt in the main thread, so claims are released; returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, handler)


def _restore_terminate(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------------------------------
# Sweep scripts and the command line
# ----------------------------------------------------------------------------------------------------

SCALES = ("quick", "medium", "paper")

# The quick scale: a CPU-sized MQAR (vocab 128, L=64, 4 and 8 training pairs, 3,000 examples, 8 epochs,
# batch 64; tested on 4, 8 and 16 pairs, 200 examples each) so a whole ablation script runs in a few minutes
# on 2 cores. The paper scale is the BASED paper's Figure 2 data and recipe (vocab 8192, 5 train / 7 test
# segments, 32 epochs, batch 256 / 32).
QUICK_TASK = MQARTask(
    vocab_size=128,
    train_segments=(Segment(64, 4, 2_000), Segment(64, 8, 1_000)),
    test_segments=(Segment(64, 4, 200), Segment(64, 8, 200), Segment(64, 16, 200)),
)
# The medium scale: the paper's model grid, learning rates and data, for 8 epochs (early stop at 0.99 as in the
# paper) and batch 256 for testing too: one H200 runs a whole ablation script in minutes (the frontier's 76 runs:
# see benchmarks/results/mqar_medium_h200/).
MEDIUM_EPOCHS = 8
PAPER_LRS = tuple(float(x) for x in np.logspace(-3, -1.5, 4))  # 1e-3, 3.2e-3, 1e-2, 3.2e-2


def scale_settings(scale: str) -> dict[str, Any]:
    """`RunConfig` settings of a scale: `task`, `epochs` and batch sizes (pass them to `grid(**settings)`).

    >>> scale_settings("quick")["epochs"], scale_settings("paper")["train_batch_size"]
    (8, 256)
    """
    if scale == "quick":
        return {"task": QUICK_TASK, "epochs": 8, "train_batch_size": 64, "test_batch_size": 200}
    if scale == "medium":
        return {"task": MQARTask(), "epochs": MEDIUM_EPOCHS, "train_batch_size": 256, "test_batch_size": 256}
    if scale == "paper":
        return {"task": MQARTask(), "epochs": 32, "train_batch_size": 256, "test_batch_size": 32}
    raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")


def paper_grid(scale: str) -> bool:
    """Whether a scale sweeps the paper's models and learning rates (`paper` and `medium`), not the small ones."""
    scale_settings(scale)  # validates
    return scale != "quick"


def learning_rates(scale: str) -> tuple[float, ...]:
    """The learning rates a scale sweeps: the paper's logspace(-3, -1.5, 4); its middle two for quick."""
    return PAPER_LRS if paper_grid(scale) else PAPER_LRS[1:3]


def load_script(path: str | os.PathLike) -> Any:
    """Import a sweep script (e.g. `ablations/feature_maps.py`) by path; it must define `grid(scale)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep script {path} not found; pass a file such as ablations/feature_maps.py")
    module_name = f"_mixerzoo_sweep_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "grid", None)):
        raise AttributeError(
            f"{path} defines no grid(scale) function; a sweep script needs "
            "`def grid(scale: str) -> list[RunConfig]` (see ablations/feature_maps.py)"
        )
    return module


def script_grid(path: str | os.PathLike, scale: str) -> tuple[str, list[RunConfig]]:
    """The sweep name (`<script stem>:<scale>`) and configs of a sweep script at `scale`."""
    module = load_script(path)
    configs = list(module.grid(scale))
    if not configs:
        raise ValueError(f"{path}: grid({scale!r}) returned no runs")
    bad = [c for c in configs if not isinstance(c, RunConfig)]
    if bad:
        raise TypeError(f"{path}: grid({scale!r}) must return RunConfig objects, got {type(bad[0]).__name__}")
    return f"{Path(path).stem}:{scale}", configs


def default_out_dir(name: str) -> Path:
    """Where a sweep's report goes by default: `mqar_<scale>/<script>/`."""
    stem, _, scale = name.partition(":")
    return Path(f"mqar_{scale or 'runs'}") / stem


def sweep_main(argv: Sequence[str] | None = None) -> int:
    """`mixerzoo sweep SCRIPT [--scale quick|paper] [--db FILE] [--workers N] [--engine local|ray] ...`."""
    parser = argparse.ArgumentParser(
        prog="mixerzoo sweep",
        description="Run a sweep script's grid, skipping runs the results database has finished, then report.",
    )
    parser.add_argument("script", help="a sweep script defining grid(scale), e.g. ablations/feature_maps.py")
    parser.add_argument(
        "--scale",
        default="quick",
        choices=SCALES,
        help="quick: CPU minutes; medium: the paper's grid, 8 epochs (one GPU, minutes); paper: GPU (default: quick)",
    )
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite results database (default: {DEFAULT_DB})")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: one per GPU, else one per core up to 8; 0 = in-process)",
    )
    parser.add_argument(
        "--engine", default="local", choices=("local", "ray"), help="where runs execute (default: local)"
    )
    parser.add_argument(
        "--ray-address", default=None, help="Ray cluster address for --engine ray; 'local' (default) starts one"
    )
    parser.add_argument(
        "--device", default=None, help="device of local workers: cpu or cuda (default: cuda if available)"
    )
    parser.add_argument("--out", default=None, help="report folder (default: mqar_<scale>/<script>/)")
    parser.add_argument("--no-report", action="store_true", help="skip the report after the sweep")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-retry-failed", action="store_true", help="leave runs that failed before as they are")
    args = parser.parse_args(argv)

    name, configs = script_grid(args.script, args.scale)
    start = time.perf_counter()
    try:
        summary = run_sweep(
            configs,
            args.db,
            name=name,
            workers=args.workers,
            engine=args.engine,
            ray_address=args.ray_address,
            device=args.device,
            progress=not args.no_progress,
            retry_failed=not args.no_retry_failed,
        )
    except KeyboardInterrupt:
        print(f"sweep {name} interrupted: finished runs are in {args.db}; run the same command to resume")
        return 130
    print(
        f"sweep {name}: {summary.total} runs, {summary.already_done} already done, {summary.finished} finished now, "
        f"{summary.failed} failed, {summary.elsewhere} running elsewhere ({time.perf_counter() - start:.0f} s); "
        f"database {args.db}"
    )
    if not args.no_report:
        from mixerzoo.report import report

        report(args.db, args.out or default_out_dir(name), sweep=name)
    return 1 if summary.failed else 0


def script_main(path: str | os.PathLike, argv: Sequence[str] | None = None) -> int:
    """The `__main__` of a sweep script: `python ablations/x.py ARGS` runs `mixerzoo sweep ablations/x.py ARGS`."""
    return sweep_main([str(path), *(sys.argv[1:] if argv is None else argv)])


__all__ = [
    "DEFAULT_DB",
    "Owner",
    "ResultsDB",
    "SweepSummary",
    "family_of",
    "grid",
    "learning_rates",
    "load_script",
    "run_sweep",
    "scale_settings",
    "script_grid",
    "script_main",
    "sweep_main",
]
