"""Run the study: execute the notebooks in order with papermill.

    python -m asymlib.study --profile smoke [--output DIR] [--figures DIR] [--only 01,02]
                            [--config FILE.yaml] [--set dotted.key=value ...] [--train-missing | --no-train-missing]

Executed copies go to ``<output>/notebooks``, run directories to ``<output>/runs``, tables to
``<output>/tables`` and figures to ``--figures`` (default ``figures/<profile>``). Finished runs are reused,
so a second invocation with the same settings only re-renders tables and figures. On the first failing
cell the runner stops and exits non-zero, naming the notebook and the cell.

``--set`` overrides any profile setting (``sr.stage2.iterations=8``); every notebook receives the same
overrides, so they share one run graph. Missing runs are trained inside the notebooks in the smoke profile;
in other profiles only with ``--train-missing`` (otherwise they are listed as pending with the
``python -m asymlib.runs train`` command that trains them).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from .atomic import atomic_write_json
from .errors import AsymlibError
from .config import get_profile, list_profiles, load_overrides, parse_overrides

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
              notebooks_dir: Path | None = None, overrides: dict | None = None,
              train_missing: bool | None = None) -> list[dict]:
    overrides = dict(overrides or {})
    get_profile(profile, **overrides)  # unknown profile or bad override -> clear error before any work
    output, figures = output.resolve(), figures.resolve()
    params = {"profile": profile, "output_dir": str(output), "figures_dir": str(figures), "overrides": overrides,
              "train_missing": train_missing}
    notebooks = [nb for nb in list_notebooks(notebooks_dir) if not only or any(nb.name.startswith(o) for o in only)]
    if not notebooks:
        raise NotebookFailed(f"--only {only} matches no notebook in {notebooks_dir or REPO_ROOT / 'notebooks'}")
    if any(nb.name[:2] in ("02", "04") for nb in notebooks):
        _require_evaluators(get_profile(profile, **overrides), "sr.evaluators" in overrides)
    summary = []
    echo = _ProgressEcho(profile, output, [nb.name[:2] for nb in notebooks], overrides)
    # the kernels keep one line per run, not progress bars (TQDM_DISABLE also reaches bars inside the library,
    # HF_HUB_DISABLE_PROGRESS_BARS those of transformers when an evaluator loads)
    os.environ.update(ASYMLIB_PROGRESS="0", TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    try:
        with echo:
            for nb in notebooks:
                print(f"[study] {nb.name} ({profile}) ...", flush=True)
                t0 = time.perf_counter()
                try:
                    seconds = run_notebook(nb, output / "notebooks", params)
                except NotebookFailed as exc:
                    summary.append({"notebook": nb.name, "seconds": round(time.perf_counter() - t0, 1),
                                    "status": "failed", "error": str(exc).split("\n--- cell source ---")[0]})
                    atomic_write_json(output / "study_summary.json",
                                      {"profile": profile, "overrides": overrides, "notebooks": summary})
                    raise
                print(f"[study] {nb.name} done in {seconds:.1f} s", flush=True)
                summary.append({"notebook": nb.name, "seconds": round(seconds, 1), "status": "ok"})
                atomic_write_json(output / "study_summary.json",
                                  {"profile": profile, "overrides": overrides, "notebooks": summary})
    finally:
        os.environ.pop("ASYMLIB_PROGRESS", None)
    return summary


def _require_evaluators(prof, named: bool) -> None:
    """Outside smoke, Table 1 needs the profile's evaluators: refuse to start when one is missing, unless the
    user named the evaluators to use (``--set sr.evaluators=[...]``)."""
    if prof.is_smoke or named:
        return
    from .sr.evaluators import evaluator_status

    missing = [st for st in map(evaluator_status, prof.sr.evaluators) if not st.available]
    if missing:
        lines = "\n  ".join(f"{st.display}: {st.reason}" for st in missing)
        raise NotebookFailed(
            f"{len(missing)} evaluator(s) of the {prof.name} profile are not on this machine:\n  {lines}\n"
            f"Install their weights (python -m asymlib.check --profile {prof.name} lists everything missing), or "
            f"name the evaluators to use, e.g. --set 'sr.evaluators=[piqe, psnr, ssim]' (Table 1 then reports those)")


class _ProgressEcho:
    """Echoes the lines the notebooks' kernels append to ``<output>/runs.log`` (one per trained run), with the
    elapsed time and an ETA over the runs of the selected notebooks that were unfinished at the start."""

    def __init__(self, profile: str, output: Path, notebooks: list[str], overrides: dict):
        from .pipeline import plan

        try:
            df = plan(profile, output, only=notebooks, overrides=overrides)
            self.total = int((~df["status"].isin(["finished", "collapsed", "unavailable"])).sum())
        except Exception:  # the plan is informative only; the notebooks report real errors
            self.total = 0
        self.log = output / "runs.log"
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> "_ProgressEcho":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log.stat().st_size if self.log.is_file() else 0
        self._t0 = time.perf_counter()
        if self.total:
            print(f"[study] {self.total} run(s) to train", flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._echo()

    def _follow(self) -> None:
        while not self._stop.wait(1.0):
            self._echo()

    def _echo(self) -> None:
        if not self.log.is_file():
            return
        with open(self.log, encoding="utf-8") as fh:
            fh.seek(self._offset)
            text = fh.read()
        complete = text[: text.rfind("\n") + 1]
        self._offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            self.done += 1
            elapsed = time.perf_counter() - self._t0
            total = max(self.total, self.done)
            eta = elapsed / self.done * (total - self.done)
            print(f"[study] run {self.done}/{total} {line.split(' ', 1)[-1]} "
                  f"({elapsed:.0f} s elapsed, ETA {eta:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asymlib.study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke", choices=list_profiles())
    ap.add_argument("--output", type=Path, default=None, help="default: study_output/<profile>")
    ap.add_argument("--figures", type=Path, default=None, help="default: figures/<profile>")
    ap.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 01,02")
    ap.add_argument("--notebooks", type=Path, default=None, help="folder of NN_*.ipynb (default: notebooks/)")
    ap.add_argument("--config", type=Path, default=None,
                    help="YAML file of profile overrides (nested or dotted keys); --set wins over it")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted profile override for every notebook, e.g. sr.stage2.iterations=8 (repeatable)")
    ap.add_argument("--train-missing", action=argparse.BooleanOptionalAction, default=None,
                    help="train missing runs inside the notebooks (default: smoke profile only)")
    args = ap.parse_args(argv)
    output = args.output or REPO_ROOT / "study_output" / args.profile
    figures = args.figures or REPO_ROOT / "figures" / args.profile
    only = [o.strip() for o in args.only.split(",")] if args.only else None
    t0 = time.perf_counter()
    try:
        overrides = {**(load_overrides(args.config) if args.config else {}), **parse_overrides(args.set)}
        summary = run_study(args.profile, output, figures, only, args.notebooks, overrides, args.train_missing)
    except (NotebookFailed, AsymlibError) as exc:
        print(f"[study] FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"profile": args.profile, "output": str(output), "figures": str(figures),
                      "total_seconds": round(time.perf_counter() - t0, 1), "notebooks": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
