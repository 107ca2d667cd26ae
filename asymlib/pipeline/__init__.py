"""The study as a graph of declared runs: stable keys, dependencies, status, and the executors that train them.

Layers: the core (``backbones``, ``metrics``, ``discriminators``, ``sr``, ``iqa``, ``data``, ``analysis``) is
below this package; ``asymlib.experiments`` (the notebooks' modules) is above it and reads the graph.

- :func:`build_graph` declares every run of a profile (:class:`RunSpec`: kind, task, result-affecting fields,
  dependencies; key ``<name>-<hash>``).
- :func:`plan` lists them in dependency order with status, iterations and estimated GPU-hours;
  :func:`run_index` lists the run folders of an output folder.
- :func:`ensure` trains a run (dependencies first, under a per-run lock).
- :mod:`~asymlib.pipeline.dispatch` spreads runs over Slurm (submitit jobs, ``afterok`` dependencies) or the GPUs
  of one machine.
- Command line: ``python -m asymlib.runs plan|train|status|launch|watch``.
"""
from .costs import DEFAULT_STEP_COSTS, StepCosts, load_step_costs
from .execute import EXECUTORS, DependencyFailed, RunPending, StudyContext, ensure, register_executor, train_command
from .graph import NOTEBOOKS, RunGraph, RunSpec, build_graph, run_hash
from .status import PLAN_COLUMNS, plan, run_index, run_state
from . import tasks  # noqa: E402,F401  (registers the executors)

__all__ = ["RunSpec", "RunGraph", "build_graph", "run_hash", "NOTEBOOKS", "plan", "run_index", "run_state",
           "PLAN_COLUMNS", "StudyContext", "ensure", "train_command", "RunPending", "DependencyFailed",
           "register_executor", "EXECUTORS", "StepCosts", "DEFAULT_STEP_COSTS", "load_step_costs"]
