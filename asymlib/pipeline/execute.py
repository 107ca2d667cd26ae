"""Train the graph's runs: one executor per task, dependencies first, one process per run at a time.

:func:`ensure` returns a finished (or collapsed) run, training it and its missing dependencies when allowed.
A run is trained under its folder's lock (``filelock``): a second process on the same run waits for the
first and then finds it finished, so no run is ever trained twice. Executors register with
:func:`register_executor`; they receive the :class:`StudyContext`, the :class:`RunSpec` and the opened
:class:`~asymlib.runs.Run` and must end by calling ``run.finish``.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..config import Profile
from ..errors import AsymlibError, UnknownNameError
from ..runs import DONE_STATUSES, Run, read_json_file
from .graph import RunGraph, RunSpec, build_graph
from .status import run_state

__all__ = ["StudyContext", "RunPending", "DependencyFailed", "register_executor", "EXECUTORS", "ensure",
           "train_command", "PROGRESS_LOG"]

Executor = Callable[["StudyContext", RunSpec, Run], None]
EXECUTORS: dict[str, Executor] = {}


class RunPending(AsymlibError):
    """A run is not finished and training is off; the message names the runs and the command that trains them."""


class DependencyFailed(AsymlibError):
    """A dependency ended collapsed or failed, so the run cannot start."""


def register_executor(task: str) -> Callable[[Executor], Executor]:
    def deco(fn: Executor) -> Executor:
        EXECUTORS[task] = fn
        return fn
    return deco


class StudyContext:
    """A profile's graph and output folder, plus objects shared by the runs trained in one process
    (datasets, built metrics, evaluators), built on first use.

    Attributes:
        profile, graph, output_dir: the study; runs live in ``output_dir/runs/<kind>/<key>``.
        progress: tqdm bars inside runs; ``log``: one line per finished run (``print`` by default).
    """

    def __init__(self, profile: Profile, output_dir: str | Path, graph: RunGraph | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = print):
        self.profile = profile
        self.output_dir = Path(output_dir)
        self.graph = graph or build_graph(profile)
        self.progress = progress
        self.log = log
        self._cache: dict[Hashable, Any] = {}

    @property
    def runs_dir(self) -> Path:
        return self.output_dir / "runs"

    @property
    def device(self) -> torch.device:
        if self.profile.device != "auto":
            return torch.device(self.profile.device)
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")

    def cached(self, key: Hashable, factory: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = factory()
        return self._cache[key]

    def spec(self, key_or_name: str | RunSpec) -> RunSpec:
        return key_or_name if isinstance(key_or_name, RunSpec) else self.graph.get(key_or_name)

    def run(self, key_or_name: str | RunSpec, tensorboard: bool = True) -> Run:
        """The run folder of a declared run (created on first use)."""
        spec = self.spec(key_or_name)
        path = spec.path(self.output_dir)
        path.mkdir(parents=True, exist_ok=True)
        return Run(path, spec.record(), tensorboard=tensorboard)

    def status(self, key_or_name: str | RunSpec) -> dict[str, Any]:
        """The run's ``status.json`` (empty when it has none; :class:`~asymlib.errors.RunFileError` naming it
        when it is unreadable); creates nothing."""
        path = self.spec(key_or_name).path(self.output_dir) / "status.json"
        return read_json_file(path) if path.is_file() else {}

    def state(self, key_or_name: str | RunSpec) -> str:
        return run_state(self.spec(key_or_name).path(self.output_dir))[0]

    def finished(self, key_or_name: str | RunSpec) -> bool:
        return self.state(key_or_name) in DONE_STATUSES

    def dep_path(self, spec: RunSpec, task: str) -> Path | None:
        """Folder of ``spec``'s dependency of task ``task`` (``None`` when it has none)."""
        for d in spec.deps:
            dep = self.graph[d]
            if dep.task == task:
                return dep.path(self.output_dir)
        return None


def train_command(ctx: StudyContext, keys: Iterable[str]) -> str:
    ks = " ".join(keys)
    return f"python -m asymlib.runs train {ks} --profile {ctx.profile.name} --output {ctx.output_dir}"


def _lock(run: Run) -> Any:
    """The run's lock; under DDP only rank 0 takes it (the other ranks follow rank 0 through the collectives)."""
    import contextlib

    return run.lock() if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext()


def ensure(ctx: StudyContext, key_or_name: str | RunSpec, train_missing: bool = True) -> Run:
    """The run ``key_or_name``, finished or collapsed; trains it (and its dependencies) when it is not.

    Raises:
        RunPending: not done and ``train_missing`` is False (the message gives the command that trains it).
        DependencyFailed: a dependency collapsed or failed.
    """
    spec = ctx.spec(key_or_name)
    if ctx.finished(spec):
        return ctx.run(spec)
    if not train_missing:
        todo = [s.key for s in ctx.graph.closure([spec.key]) if not ctx.finished(s)]
        raise RunPending(f"run {spec.key} is {ctx.state(spec)}; train it with: {train_command(ctx, todo)}")
    for d in spec.deps:
        dep_run = ensure(ctx, d, train_missing)
        status = (dep_run.status or {}).get("status")
        if status != "finished":
            raise DependencyFailed(f"run {spec.key} needs {d}, which ended {status}: "
                                   f"{(dep_run.status or {}).get('reason', '')}")
    if spec.task not in EXECUTORS:
        from . import tasks  # noqa: F401  (registers the executors)
    if spec.task not in EXECUTORS:
        raise UnknownNameError(f"no executor for task {spec.task!r}; registered: {sorted(EXECUTORS)}")
    run = ctx.run(spec)
    with _lock(run):
        if run.finished:  # another process trained it while this one waited
            return run
        t0 = time.perf_counter()
        EXECUTORS[spec.task](ctx, spec, run)
        st = run.status or {}
        line = (f"{spec.kind}/{spec.key}: {st.get('status', 'not finished')}"
                f"{' at step ' + str(st['step']) if 'step' in st else ''} in {time.perf_counter() - t0:.1f} s")
        if int(os.environ.get("RANK", "0")) == 0:
            _append_progress(ctx.output_dir, line)
        if ctx.log is not None:
            ctx.log(f"[runs] {line}")
    return run


PROGRESS_LOG = "runs.log"


def _append_progress(output_dir: Path, line: str) -> None:
    """One line per trained run in ``<output>/runs.log`` (what ``python -m asymlib.study`` echoes with an ETA)."""
    import datetime as dt

    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with open(output_dir / PROGRESS_LOG, "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} {line}\n")
