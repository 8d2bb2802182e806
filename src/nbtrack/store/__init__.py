"""Where runs live: per-run journals (the truth) and a TinyDB catalog (the index).

The store knows nothing of IPython, pandas or widgets; ``nbtrack.tracking`` sits on it.
"""

from nbtrack.store.recovery import DoctorReport, doctor, rebuild
from nbtrack.store.store import DEFAULT_EXPERIMENT_ID, Store
from nbtrack.store.writer import RunWriter

__all__ = ["DEFAULT_EXPERIMENT_ID", "DoctorReport", "RunWriter", "Store", "doctor", "rebuild"]
