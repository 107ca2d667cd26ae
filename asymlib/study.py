"""Run the study: execute the notebooks in order with papermill.

    python -m asymlib.study --profile smoke [--output DIR] [--figures DIR] [--only 01,02]

Executed copies go to ``<output>/notebooks``, run directories to ``<output>/runs``, tables to
``<output>/tables`` and figures to ``--figures`` (default ``figures/<profile>``). Finished runs are reused,
so a second invocation with the same settings only re-renders tables and figures. On the first failing
cell the runner stops and exits non-zero, naming the notebook and the cell.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .atomic import atomic_write_json
from .config import get_profile, list_profiles

__all__ = ["REPO_ROOT", "list_notebooks", "run_notebook", "run_study", "main", "NotebookFailed"]

REPO_ROOT = Path(__file__).resolve().parent.parent


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


def list_notebooks(folder: Path | None = None) -> list[Path]:
    folder = Path(folder or REPO_ROOT / "notebooks")
    nbs = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return nbs


def _check_parameters_cell(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise NotebookFailed(f"{path.name}: no cell tagged 'parameters'; papermill cannot inject the profile")


def run_notebook(path: Path, out_dir: Path, parameters: dict, kernel_name: str = "python3") -> float:
    """Execute one notebook; returns seconds. Raises NotebookFailed naming the failing cell."""
    import papermill as pm

    _check_parameters_cell(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(path), str(out_dir / path.name), parameters=parameters, kernel_name=kernel_name,
                            cwd=str(path.parent), progress_bar=False)
    except pm.PapermillExecutionError as exc:
        raise NotebookFailed(
            f"{path.name} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue}\n--- cell source ---\n{exc.source}"
        ) from exc
    return time.perf_counter() - t0


def run_study(profile: str, output: Path, figures: Path, only: list[str] | None = None,
              notebooks_dir: Path | None = None) -> list[dict]:
    get_profile(profile)  # unknown profile -> clear error before any work
    output, figures = output.resolve(), figures.resolve()
    params = {"profile": profile, "output_dir": str(output), "figures_dir": str(figures)}
    summary = []
    for nb in list_notebooks(notebooks_dir):
        if only and not any(nb.name.startswith(o) for o in only):
            continue
        print(f"[study] {nb.name} ({profile}) ...", flush=True)
        seconds = run_notebook(nb, output / "notebooks", params)
        print(f"[study] {nb.name} done in {seconds:.1f} s", flush=True)
        summary.append({"notebook": nb.name, "seconds": round(seconds, 1), "status": "ok"})
        atomic_write_json(output / "study_summary.json", {"profile": profile, "notebooks": summary})
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asymlib.study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke", choices=list_profiles())
    ap.add_argument("--output", type=Path, default=None, help="default: study_output/<profile>")
    ap.add_argument("--figures", type=Path, default=None, help="default: figures/<profile>")
    ap.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 01,02")
    ap.add_argument("--notebooks", type=Path, default=None, help="folder of NN_*.ipynb (default: notebooks/)")
    args = ap.parse_args(argv)
    output = args.output or REPO_ROOT / "study_output" / args.profile
    figures = args.figures or REPO_ROOT / "figures" / args.profile
    only = [o.strip() for o in args.only.split(",")] if args.only else None
    t0 = time.perf_counter()
    try:
        summary = run_study(args.profile, output, figures, only, args.notebooks)
    except NotebookFailed as exc:
        print(f"[study] FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"profile": args.profile, "output": str(output), "figures": str(figures),
                      "total_seconds": round(time.perf_counter() - t0, 1), "notebooks": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
