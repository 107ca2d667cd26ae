"""Where the study stands: the plan of a profile's graph and the index of an output folder's runs."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Profile, get_profile, parse_overrides
from ..errors import RunFileError
from ..runs import read_json_file
from .costs import load_step_costs
from .graph import RunGraph, build_graph

__all__ = ["run_state", "plan", "run_index", "PLAN_COLUMNS"]

PLAN_COLUMNS = ["key", "kind", "task", "name", "notebooks", "roles", "deps", "status", "step", "iterations",
                "gpu_hours", "path"]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_logged_step(log: Path) -> int | None:
    """Step of the last complete line of ``log.jsonl`` (a torn last line is ignored)."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def run_state(path: Path) -> tuple[str, int | None, str]:
    """``(status, step, reason)`` of a run folder.

    ``status``: ``finished`` / ``collapsed`` / ``failed`` (from ``status.json``), ``corrupt`` (an unreadable
    ``status.json``; ``reason`` names it), ``partial`` (started, not done; ``step`` is the last logged step), or
    ``missing``. (:func:`plan` adds ``unavailable`` for the calibration of
    an evaluator whose weights are not on this machine.)
    """
    if (path / "status.json").is_file():
        try:
            st = read_json_file(path / "status.json")
        except RunFileError as exc:
            return "corrupt", None, str(exc)
        return str(st.get("status", "failed")), st.get("step"), str(st.get("reason", ""))
    if not path.is_dir() or not any(path.iterdir()):
        return "missing", None, ""
    return "partial", _last_logged_step(path / "log.jsonl"), ""


def _graph_for(profile: Profile | str, overrides: Mapping[str, Any] | Sequence[str] | None) -> RunGraph:
    ov = parse_overrides(overrides)
    prof = get_profile(profile, **ov) if ov else get_profile(profile)
    return build_graph(prof)


def plan(profile: Profile | str, output_dir: str | Path | None = None, only: Sequence[str] | None = None,
         overrides: Mapping[str, Any] | Sequence[str] | None = None) -> pd.DataFrame:
    """The runs of ``profile``'s graph in dependency order with their status in ``output_dir``.

    Columns: :data:`PLAN_COLUMNS` (``deps`` a list of keys, ``path`` relative to the output folder,
    ``gpu_hours`` estimated from :func:`~asymlib.pipeline.costs.load_step_costs` for the remaining steps).
    ``df.attrs`` holds ``profile`` and ``cost_source``. Nothing is trained or built; offline and fast.
    """
    graph = _graph_for(profile, overrides)
    costs = load_step_costs(output_dir)
    rows = []
    for spec in graph.select(only):
        status, step, _ = run_state(spec.path(output_dir)) if output_dir is not None else ("missing", None, "")
        if status == "missing" and spec.task == "calibration" and not _evaluator_available(spec.identity["evaluator"]):
            status = "unavailable"
        remaining = spec.iterations - int(step or 0) if status in ("partial", "missing") else 0
        hours = costs.gpu_hours(spec.cost, remaining) if status in ("partial", "missing") else 0.0
        rows.append({"key": spec.key, "kind": spec.kind, "task": spec.task, "name": spec.name,
                     "notebooks": list(spec.notebooks), "roles": list(spec.roles), "deps": list(spec.deps),
                     "status": status, "step": step, "iterations": spec.iterations, "gpu_hours": hours,
                     "path": spec.relpath()})
    df = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    df.attrs.update(profile=graph.profile.name, cost_source=costs.source)
    return df


def _evaluator_available(name: str) -> bool:
    from ..sr.evaluators import evaluator_status

    return evaluator_status(name).available


def run_index(output_dir: str | Path) -> pd.DataFrame:
    """Every run folder under ``<output_dir>/runs`` with its status, whatever profile declared it.

    Columns: ``key, kind, task, name, status, step, reason, deps, path`` (``path`` relative to ``output_dir``).
    """
    root = Path(output_dir) / "runs"
    rows = []
    for path in sorted(p for p in root.glob("*/*") if p.is_dir()):
        cfg = _read_json(path / "config.json") or {}
        status, step, reason = run_state(path)
        rows.append({"key": path.name, "kind": path.parent.name, "task": cfg.get("task", ""),
                     "name": cfg.get("name", path.name.rsplit("-", 1)[0]), "status": status, "step": step,
                     "reason": reason, "deps": cfg.get("deps", []),
                     "path": str(path.relative_to(Path(output_dir)))})
    return pd.DataFrame(rows, columns=["key", "kind", "task", "name", "status", "step", "reason", "deps", "path"])
