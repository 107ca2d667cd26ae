"""Spread the graph's runs over a Slurm cluster or the GPUs of one machine (``python -m asymlib.runs launch``).

Executors:

- ``slurm``: one submitit job per run; a run's unfinished dependencies become ``afterok`` dependencies of its
  job, so stage 2 starts when stage 1 and the metric runs have finished. Jobs are checkpointable: on a time
  limit or a preemption Slurm signals the job, submitit requeues it (at most ``max_requeue`` times) and the run
  resumes from its last checkpoint. A run that collapses is recorded as such; its dependants then stop at once
  with ``failed`` and the reason (they are reported, never retried).
- ``local``: the runs over the GPUs of this machine, at most one run per GPU at a time (``gpus_per_run`` GPUs
  per run), each a process of submitit's ``LocalExecutor`` with ``CUDA_VISIBLE_DEVICES`` set to the GPUs it was
  given. submitit's local executor gives every job the *first* visible GPUs, so the pooling (which GPUs are
  free, which runs are ready) is done here, in the launching process, which stays up until every run ended.
- ``inline``: in this process, one run after another (CPU machines, tests).

Every launch records its jobs in ``<output>/launch.json`` (run key -> executor, job id, GPUs, time);
:func:`watch_table` reads it with the run folders.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from ..atomic import atomic_write_json
from ..config import get_profile
from ..errors import AsymlibError, ConfigError
from ..runs import read_json_file
from .costs import load_step_costs
from .execute import DependencyFailed, StudyContext, ensure
from .graph import RunSpec
from .status import run_state

__all__ = ["ClusterOptions", "TrainJob", "launch_specs", "slurm_parameters", "launch_slurm", "launch_local",
           "schedule_local", "launch_inline", "watch_table", "LAUNCH_RECORD", "LaunchError"]

LAUNCH_RECORD = "launch.json"
_DONE = ("finished", "collapsed")


class LaunchError(AsymlibError):
    """A launch cannot proceed (e.g. a dependency is neither finished nor part of the launch)."""


@dataclass(frozen=True)
class ClusterOptions:
    """Resources and scheduler options of each run's job.

    Attributes:
        partition, account, constraint, qos: Slurm options (``None``: the cluster's default).
        time_min: job time limit in minutes; ``None`` takes the run's estimate from the step-cost table
            (:mod:`asymlib.pipeline.costs`) times 1.5 plus 30 minutes, at least 60 and at most ``max_time_min``.
        max_time_min: cap of the estimated time limit (longer runs are requeued from their checkpoints).
        gpus_per_run: GPUs of a training run (several: DDP, one task per GPU); evaluation runs use at most one.
        cpus_per_run: CPUs per task (data-loading workers).
        mem_gb: memory per job (``None``: the cluster's default).
        max_requeue: requeues after a time limit or preemption before the run is reported as failed.
        extra: further ``sbatch`` options (``{"mail-type": "FAIL"}``), passed as they are.
    """

    partition: str | None = None
    account: str | None = None
    constraint: str | None = None
    qos: str | None = None
    time_min: int | None = None
    max_time_min: int = 48 * 60
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: int | None = None
    max_requeue: int = 3
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("gpus_per_run", "max_requeue"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ClusterOptions.{name} must be >= 0, got {getattr(self, name)}")
        if self.cpus_per_run < 1:
            raise ConfigError(f"ClusterOptions.cpus_per_run must be >= 1, got {self.cpus_per_run}")
        if self.time_min is not None and self.time_min < 1:
            raise ConfigError(f"ClusterOptions.time_min must be >= 1 minute, got {self.time_min}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "ClusterOptions":
        """Options from a YAML file (keys as the attributes), then ``overrides`` whose value is not None."""
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read cluster options {p}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{p} must hold a mapping of option: value")
        known = {f for f in cls.__dataclass_fields__}
        bad = sorted(set(data) - known)
        if bad:
            raise ConfigError(f"{p}: unknown option(s) {bad}; known: {sorted(known)}")
        return cls(**{**data, **{k: v for k, v in overrides.items() if v is not None}})


class TrainJob:
    """What a job runs: train one run of a profile's graph (its dependencies must be finished).

    Picklable (submitit sends it to the job). On a time limit or preemption submitit calls :meth:`checkpoint`,
    which resubmits the same job; the run then resumes from its last checkpoint.
    """

    def __init__(self, profile: str, overrides: Mapping[str, Any], output_dir: str | Path, key: str):
        self.profile, self.overrides, self.output_dir, self.key = profile, dict(overrides), str(output_dir), key

    def __call__(self) -> str:
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if _job_tasks() > 1:  # one task per GPU: DDP, each rank on the GPU of its LOCAL_RANK
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        from ..sr.trainer import init_distributed

        info = init_distributed()
        ctx = StudyContext(get_profile(self.profile, **self.overrides), self.output_dir,
                           log=print if info.is_main else None)
        spec = ctx.graph.get(self.key)
        try:
            run = ensure(ctx, spec, train_missing=True)
        except DependencyFailed as exc:
            if info.is_main:
                run = ctx.run(spec)
                run.finish("failed", reason=str(exc))
            return f"{self.key}: failed: {exc}"
        finally:
            if info.enabled:
                import torch.distributed as dist

                dist.destroy_process_group()
        st = run.status or {}
        return f"{self.key}: {st.get('status')} at step {st.get('step')} (GPUs {gpus or 'none'})"

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.profile, self.overrides, self.output_dir, self.key))


def _job_tasks() -> int:
    """Number of tasks of the submitit job this process belongs to (1 outside a job)."""
    try:
        import submitit

        return int(submitit.JobEnvironment().num_tasks)
    except (ImportError, RuntimeError, KeyError, ValueError):
        return 1


def launch_specs(ctx: StudyContext, keys: Sequence[str] | None = None, only: Sequence[str] | None = None,
                 ) -> list[RunSpec]:
    """The runs a launch submits: ``keys`` (or the notebooks ``only``, or the whole graph) with their
    dependencies, in dependency order, less those already finished or collapsed."""
    specs = ctx.graph.closure([ctx.graph.get(k).key for k in keys]) if keys else ctx.graph.select(only)
    todo = [s for s in specs if not ctx.finished(s)]
    for s in todo:
        for d in s.deps:
            state = ctx.state(d)
            if state not in _DONE and d not in {t.key for t in todo}:
                raise LaunchError(f"run {s.key} needs {d}, which is {state} and not part of this launch")
    return todo


def _time_limit(spec: RunSpec, opts: ClusterOptions, costs: Any) -> int:
    if opts.time_min is not None:
        return int(opts.time_min)
    hours = costs.gpu_hours(spec.cost, spec.iterations)
    return int(min(max(60, hours * 60 * 1.5 + 30), opts.max_time_min))


def _gpus(spec: RunSpec, opts: ClusterOptions) -> int:
    return opts.gpus_per_run if spec.iterations > 0 else min(opts.gpus_per_run, 1)


def slurm_parameters(spec: RunSpec, opts: ClusterOptions, costs: Any, dependency_jobs: Sequence[str] = ()
                     ) -> dict[str, Any]:
    """``sbatch`` options of one run's job (as ``--key=value`` names without the dashes)."""
    gpus = _gpus(spec, opts)
    params: dict[str, Any] = {"job-name": f"asymlib-{spec.key}", "time": _time_limit(spec, opts, costs),
                              "nodes": 1, "ntasks-per-node": max(gpus, 1), "cpus-per-task": opts.cpus_per_run}
    if gpus:
        params["gpus-per-node"] = gpus
    for name in ("partition", "account", "constraint", "qos"):
        if getattr(opts, name):
            params[name] = getattr(opts, name)
    if opts.mem_gb:
        params["mem"] = f"{opts.mem_gb}G"
    if dependency_jobs:
        params["dependency"] = "afterok:" + ":".join(str(j) for j in dependency_jobs)
    params.update(opts.extra)
    return params


def _record(output_dir: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
    path = output_dir / LAUNCH_RECORD
    old = read_json_file(path) if path.is_file() else {}
    atomic_write_json(path, {**old, **entries})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def launch_slurm(ctx: StudyContext, specs: Sequence[RunSpec], opts: ClusterOptions, overrides: Mapping[str, Any],
                 dry_run: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Submit one job per run with ``afterok`` dependencies; returns run key -> job id (``dry-run-<n>`` for a dry
    run, which prints every job's ``sbatch`` options and dependencies and submits nothing)."""
    costs = load_step_costs(ctx.output_dir)
    executor = None
    if not dry_run:
        import submitit

        executor = submitit.AutoExecutor(folder=str(ctx.output_dir / "slurm" / "%j"), cluster="slurm",
                                         slurm_max_num_timeout=opts.max_requeue)
    jobs: dict[str, str] = {}
    rows = []
    for i, spec in enumerate(specs):
        deps = [jobs[d] for d in spec.deps if d in jobs]
        params = slurm_parameters(spec, opts, costs, deps)
        if dry_run:
            jobs[spec.key] = f"dry-run-{i}"
            rows.append({"job": jobs[spec.key], "run": f"{spec.kind}/{spec.key}",
                         "after": ",".join(f"dry-run-{list(jobs).index(d)}" for d in spec.deps if d in jobs),
                         "sbatch": " ".join(f"--{k}={v}" for k, v in params.items() if k != "dependency")})
            continue
        assert executor is not None
        gpus = params.get("gpus-per-node", 0)
        extra = {k.replace("-", "_"): v for k, v in params.items()
                 if k in ("account", "constraint", "qos", "dependency") or k in opts.extra}
        sized = {k: v for k, v in (("gpus_per_node", gpus), ("mem_gb", opts.mem_gb), ("slurm_partition", opts.partition))
                 if v}
        executor.update_parameters(name=params["job-name"], timeout_min=params["time"], nodes=1,
                                   tasks_per_node=params["ntasks-per-node"], cpus_per_task=opts.cpus_per_run,
                                   slurm_additional_parameters=extra, **sized)
        job = executor.submit(TrainJob(ctx.profile.name, overrides, ctx.output_dir.resolve(), spec.key))
        jobs[spec.key] = str(job.job_id)
        _record(ctx.output_dir, {spec.key: {"executor": "slurm", "job_id": str(job.job_id), "gpus": gpus,
                                            "submitted": _now(), "after": deps,
                                            "log": str(Path(job.paths.stdout).relative_to(ctx.output_dir.resolve()))
                                            if str(job.paths.stdout).startswith(str(ctx.output_dir.resolve()))
                                            else str(job.paths.stdout)}})
        log(f"[launch] {spec.kind}/{spec.key}: Slurm job {job.job_id}"
            + (f" after {','.join(deps)}" if deps else ""))
    if dry_run:
        with pd.option_context("display.max_rows", None, "display.max_colwidth", 200, "display.width", 250):
            log(pd.DataFrame(rows).to_string(index=False) if rows else "(nothing to submit)")
        log(f"[launch] dry run: {len(rows)} job(s) would be submitted; nothing was submitted")
    return jobs


class JobLike(Protocol):
    def done(self) -> bool: ...


def schedule_local(ctx: StudyContext, specs: Sequence[RunSpec], gpus: Sequence[int], gpus_per_run: int,
                   submit: Callable[[RunSpec, tuple[int, ...]], JobLike], poll_s: float = 2.0,
                   log: Callable[[str], None] = print) -> dict[str, str]:
    """Run ``specs`` over the GPU ids ``gpus``: a run starts when its dependencies have finished and
    ``gpus_per_run`` GPUs are free (lowest ids first), and gives them back when its job ends; at most one run per
    GPU at a time. With ``gpus_per_run=0`` every id is a slot for one CPU run. Dependants of a collapsed or
    failed run are not started. Returns run key -> final status (``skipped: ...`` for those).
    """
    need = max(gpus_per_run, 1)
    if len(gpus) < need:
        raise LaunchError(f"{gpus_per_run} GPU(s) per run but only {list(gpus)} given")
    free = sorted(int(g) for g in gpus)
    pending = list(specs)
    running: dict[str, tuple[JobLike, tuple[int, ...]]] = {}
    result: dict[str, str] = {}
    while pending or running:
        for key, (job, ids) in list(running.items()):
            if job.done():
                del running[key]
                free = sorted(free + list(ids))
                result[key] = ctx.state(key)
                log(f"[launch] {key}: {result[key]} (GPUs {list(ids)} free again)")
        for spec in list(pending):
            states = {d: (result.get(d) or ctx.state(d)) for d in spec.deps}
            bad = {d: s for d, s in states.items() if s in ("collapsed", "failed") or s.startswith("skipped")}
            if bad:
                pending.remove(spec)
                result[spec.key] = f"skipped: dependency {', '.join(f'{d} {s}' for d, s in bad.items())}"
                log(f"[launch] {spec.key}: {result[spec.key]}")
                continue
            if any(s != "finished" for s in states.values()) or len(free) < need:
                continue
            ids = tuple(free[:need]) if gpus_per_run else (free[0],)
            free = free[len(ids):]
            pending.remove(spec)
            running[spec.key] = (submit(spec, ids if gpus_per_run else ()), ids)
            log(f"[launch] {spec.kind}/{spec.key}: started on {'GPUs' if gpus_per_run else 'slot'} {list(ids)}")
        if pending and not running and not any(all((result.get(d) or ctx.state(d)) == "finished" for d in s.deps)
                                                for s in pending):
            raise LaunchError(f"runs {[s.key for s in pending]} wait for dependencies that will not finish")
        if running:
            time.sleep(poll_s)
    return result


def launch_local(ctx: StudyContext, specs: Sequence[RunSpec], gpus: Sequence[int], opts: ClusterOptions,
                 overrides: Mapping[str, Any], poll_s: float = 2.0, log: Callable[[str], None] = print
                 ) -> dict[str, str]:
    """:func:`schedule_local` with submitit's ``LocalExecutor``: each run is a process that sees only its GPUs."""
    import submitit

    costs = load_step_costs(ctx.output_dir)

    def submit(spec: RunSpec, ids: tuple[int, ...]) -> Any:
        ex = submitit.LocalExecutor(folder=str(ctx.output_dir / "local" / "%j"), max_num_timeout=opts.max_requeue)
        ex.update_parameters(timeout_min=_time_limit(spec, opts, costs), gpus_per_node=len(ids),
                             tasks_per_node=max(len(ids), 1), visible_gpus=tuple(ids))
        job = ex.submit(TrainJob(ctx.profile.name, overrides, ctx.output_dir.resolve(), spec.key))
        _record(ctx.output_dir, {spec.key: {"executor": "local", "job_id": str(job.job_id), "gpus": list(ids),
                                            "submitted": _now()}})
        return job

    return schedule_local(ctx, specs, gpus, opts.gpus_per_run, submit, poll_s=poll_s, log=log)


def launch_inline(ctx: StudyContext, specs: Sequence[RunSpec], log: Callable[[str], None] = print
                  ) -> dict[str, str]:
    """Train ``specs`` in this process, one after another (dependants of a collapsed run are skipped)."""
    result: dict[str, str] = {}
    for spec in specs:
        bad = [d for d in spec.deps if ctx.state(d) in ("collapsed", "failed")]
        if bad:
            result[spec.key] = f"skipped: dependency {', '.join(bad)} did not finish"
            log(f"[launch] {spec.key}: {result[spec.key]}")
            continue
        _record(ctx.output_dir, {spec.key: {"executor": "inline", "job_id": str(os.getpid()), "gpus": [],
                                            "submitted": _now()}})
        ensure(ctx, spec)
        result[spec.key] = ctx.state(spec)
    return result


def _job_states(record: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Slurm job id -> state from ``squeue`` (empty where squeue is not available)."""
    import shutil
    import subprocess

    ids = sorted({str(v["job_id"]) for v in record.values() if v.get("executor") == "slurm"})
    if not ids or shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split(None, 1) for line in out.splitlines() if " " in line)


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:160] if lines else ""


def watch_table(output_dir: str | Path) -> pd.DataFrame:
    """The launched runs of ``output_dir`` and where they stand.

    Columns: ``key, executor, job, gpus, state`` (``finished`` / ``collapsed`` / ``failed`` / ``running`` /
    ``queued``), ``step``, ``iterations``, ``eta_s`` (from the run's measured seconds per step), ``note`` (the
    failure's reason or the last line of the job's log).
    """
    out = Path(output_dir)
    path = out / LAUNCH_RECORD
    record = read_json_file(path) if path.is_file() else {}
    squeue = _job_states(record)
    rows = []
    for key, info in record.items():
        kind = None
        for cand in (out / "runs").glob(f"*/{key}"):
            kind = cand.parent.name
        run_dir = out / "runs" / (kind or "?") / key
        status, step, reason = run_state(run_dir)
        cfg = read_json_file(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
        iterations = _iterations(cfg)
        job_state = squeue.get(str(info.get("job_id")), "")
        state = status
        if status == "partial":
            state = "running" if job_state in ("", "RUNNING", "COMPLETING") else job_state.lower()
        elif status == "missing":
            state = "queued" if job_state in ("", "PENDING", "CONFIGURING") else job_state.lower()
        eta = None
        if state == "running" and step and iterations:
            started = _started(run_dir)
            log = run_dir / "log.jsonl"
            if started is not None and log.is_file():
                per_step = (log.stat().st_mtime - started) / max(int(step), 1)
                eta = round(per_step * max(iterations - int(step), 0))
        note = reason
        if not note and info.get("log") and state not in ("finished", "queued"):
            note = _last_line(out / str(info["log"]).replace("_log.out", "_log.err"))
        rows.append({"key": key, "executor": info.get("executor"), "job": info.get("job_id"),
                     "gpus": info.get("gpus"), "state": state, "step": step, "iterations": iterations,
                     "eta_s": eta, "note": note})
    return pd.DataFrame(rows, columns=["key", "executor", "job", "gpus", "state", "step", "iterations", "eta_s",
                                       "note"])


def _iterations(cfg: Mapping[str, Any]) -> int | None:
    train = (cfg.get("identity") or {}).get("train") or (cfg.get("identity") or {}).get("nr_train")
    return int(train["iterations"]) if isinstance(train, Mapping) and "iterations" in train else None


def _started(run_dir: Path) -> float | None:
    try:
        created = json.loads((run_dir / "provenance.json").read_text())["created"]
        return dt.datetime.fromisoformat(created).timestamp()
    except (OSError, ValueError, KeyError):
        return None
