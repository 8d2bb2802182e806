"""Projects: notebooks run headless once per parameter set, and MLflow ``MLproject`` folders.

``nbtrack run NOTEBOOK -p k=v [--grid k=v1,v2] [--jobs N]`` (see ``sweep``) and
``nbtrack run DIR [-e ENTRY] -P k=v`` (see ``mlproject``); each execution is a tracked run
that the code it runs logs into.
"""

from nbtrack.projects.mlproject import load, run_project
from nbtrack.projects.sweep import Outcome, parameter_sets, run_sweep

__all__ = ["Outcome", "load", "parameter_sets", "run_project", "run_sweep"]
