"""System metrics: each run's wall time, CPU time and peak memory; ``system/*`` samples.

Runs started with ``log_system_metrics=True`` (or after MLflow's
``enable_system_metrics_logging()``) are measured, and every run while system autolog is
on. When a measured run ends, it gets ``system/wall_time_seconds``,
``system/cpu_time_seconds`` (the process's user + system time while it was active) and
``system/peak_memory_megabytes``. The peak is exact when the run set a new high for the
process (the kernel's own high-water mark moved); otherwise it is the highest sample.
While runs are active a background thread samples every few seconds (5 by default,
``NBTRACK_SYSTEM_SAMPLING_SECONDS``), with MLflow's names:
``system/cpu_utilization_percentage``, ``system/system_memory_usage_megabytes``,
``system/system_memory_usage_percentage`` and ``system/process_memory_megabytes``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbtrack.autologging import AutologConfig
from nbtrack.autologging.patches import guarded
from nbtrack.tracking import fluent

if TYPE_CHECKING:
    from nbtrack.store import Store
    from nbtrack.tracking.session import ActiveRun

MB = 1e6
DEFAULT_INTERVAL_SECONDS = 5.0


@dataclass
class _Baseline:
    store: Store
    started: float  # time.monotonic()
    cpu: float  # process user + system seconds
    high_water: float  # the process's peak RSS so far, in bytes
    peak_sample: float  # highest RSS seen while the run was active
    samples: int = 0


_runs: dict[str, _Baseline] = {}
_lock = threading.Lock()
_sampler: _Sampler | None = None
_every_run = False  # system autolog is on: measure every run, not only those that ask


def enable(config: AutologConfig) -> None:
    global _every_run
    _every_run = True
    for run in list(fluent.default_session().active):
        _measure(run)


def disable() -> None:
    global _sampler, _every_run
    _every_run = False
    with _lock:
        _runs.clear()
        sampler, _sampler = _sampler, None
    if sampler is not None:
        sampler.stop()


def on_run_start(run: ActiveRun, resumed: bool) -> None:
    """A process-wide observer (nbtrack/__init__.py registers it): measure the run if it
    asked to (``start_run(log_system_metrics=True)``) or system autolog is on."""
    if _every_run or run.log_system_metrics:
        _measure(run)


def _measure(run: ActiveRun) -> None:
    global _sampler
    process = _process()
    rss = process.memory_info().rss
    baseline = _Baseline(run.store, time.monotonic(), _cpu(process), _high_water(), rss)
    with _lock:
        _runs.setdefault(run.run_id, baseline)
        if _sampler is None:
            _sampler = _Sampler(_interval())


def on_run_end(run_id: str, status: str) -> None:
    """The observer's other half: log the run's totals, and stop sampling it."""
    with _lock:
        baseline = _runs.pop(run_id, None)
    if baseline is None:
        return
    process = _process()
    peak = max(baseline.peak_sample, process.memory_info().rss)
    high_water = _high_water()
    if high_water > baseline.high_water:  # the run set the process's record: exact
        peak = high_water
    metrics = {
        "system/wall_time_seconds": time.monotonic() - baseline.started,
        "system/cpu_time_seconds": _cpu(process) - baseline.cpu,
        "system/peak_memory_megabytes": peak / MB,
    }
    _log(baseline.store, run_id, metrics, step=0)


def _log(store: Store, run_id: str, metrics: dict[str, float], step: int) -> None:
    now = time.time() * 1000
    points = [item for key, value in metrics.items() for item in (key, float(value), step, now)]
    store.log_points(run_id, points)


class _Sampler:
    """A daemon thread that samples system metrics into every active run."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        _process().cpu_percent(None)  # the first reading only starts the measurement
        self._thread = threading.Thread(target=self._run, name="nbtrack-system", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            guarded("sample system metrics", sample, silent=True)

    def stop(self) -> None:
        self._stop.set()


def sample() -> None:
    """Log one sample of the system metrics into every run being measured."""
    import psutil

    process = _process()
    rss = process.memory_info().rss
    memory = psutil.virtual_memory()
    values = {
        "system/cpu_utilization_percentage": process.cpu_percent(None),
        "system/system_memory_usage_megabytes": memory.used / MB,
        "system/system_memory_usage_percentage": memory.percent,
        "system/process_memory_megabytes": rss / MB,
    }
    with _lock:
        runs = list(_runs.items())
    for run_id, baseline in runs:
        baseline.samples += 1
        baseline.peak_sample = max(baseline.peak_sample, rss)
        _log(baseline.store, run_id, values, step=baseline.samples)


_processes: dict[int, Any] = {}


def _process() -> Any:
    import psutil

    pid = os.getpid()  # a forked child measures itself
    process = _processes.get(pid)
    if process is None:
        process = _processes[pid] = psutil.Process(pid)
    return process


def _cpu(process: Any) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _high_water() -> float:
    """The process's peak resident memory in bytes (ru_maxrss: KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows: psutil knows the peak working set
        return float(getattr(_process().memory_info(), "peak_wset", 0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if sys.platform == "darwin" else peak * 1024)


def _interval() -> float:
    try:
        return max(0.05, float(os.environ.get("NBTRACK_SYSTEM_SAMPLING_SECONDS", "")))
    except ValueError:
        return DEFAULT_INTERVAL_SECONDS
