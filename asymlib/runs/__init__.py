"""Run directories: one folder per run, written so that a crash never leaves a result that looks finished.

The study's runs are declared in :mod:`asymlib.pipeline`, whose keys name the folders
(``<output>/runs/<kind>/<name>-<hash>``); :func:`open_run` keys a folder by a hash of a whole configuration for
code outside the study graph. ``python -m asymlib.runs plan|train|status`` is the command line of the graph.

Layout of a run folder::

    config.json        the run's key, kind, task, result-affecting fields and dependencies (what the key covers)
    provenance.json    profile, weights source per backbone, seed, package versions, git commit
    log.jsonl          one JSON object per logged step
    tb/                TensorBoard events (same scalars as log.jsonl)
    results.csv        final results as tidy rows (one observation per row)
    checkpoint*.pt     checkpoints (written atomically)
    status.json        {"status": "finished" | "collapsed" | "failed", ...}; written last

A run counts as done only once ``status.json`` exists, so a crash never leaves a half-written result that
looks finished; re-opening the same config finds the finished run and its results are reused.

Concurrency and crashes:

* **One trainer per run.** ``.lock`` in the run folder is an exclusive inter-process lock
  (:meth:`Run.lock`, :func:`try_lock_run`). A second worker on the same run waits for the lock (or, with
  :func:`try_lock_run`, skips the run); it never trains it twice. After acquiring the lock the caller must
  re-check :attr:`Run.finished`: the previous holder may have finished the run meanwhile::

      with run.lock():
          if not run.finished:
              train(run)

  The lock is per process (not reentrant across :class:`RunLock` objects): take it once, around the whole
  training, and do not take it again inside. The OS releases it when the holder exits or is killed (on a
  filesystem without ``flock`` ``filelock`` may fall back to a lock file that a killed holder leaves behind).
* **Resume.** A trainer resuming at step ``N`` calls :meth:`Run.prepare_resume` (``N = 0`` for a fresh start
  in a folder that may hold an interrupted attempt): it deletes the temporary files of atomic writes killed
  midway (:func:`asymlib.atomic.remove_orphan_temps`, also done by :meth:`Run.start`) and drops the log rows
  after step ``N``, so ``log.jsonl`` never repeats a step. Both are only safe while holding the lock. A
  torn last line of ``log.jsonl`` (a writer killed mid-line) is ignored by :meth:`Run.read_log` and removed
  by :meth:`Run.truncate_log` and by the next :meth:`Run.log`. TensorBoard events may repeat steps.
* **Identity.** :meth:`Run.identity` (folder name and config hash) is stored in checkpoints;
  :meth:`Run.check_identity` refuses a checkpoint copied from another run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
from filelock import FileLock, Timeout

from ..atomic import (append_text, atomic_torch_save, atomic_write_csv, atomic_write_json, atomic_write_text,
                      remove_orphan_temps)
from ..errors import CheckpointError, RunFileError

__all__ = ["config_hash", "to_jsonable", "Run", "RunLock", "LockTimeout", "open_run", "try_lock_run", "run_of",
           "read_json_file", "read_csv_file", "tensorboard_tag", "flat_hparams"]

DONE_STATUSES = ("finished", "collapsed")
LOCK_NAME = ".lock"
LOG_NAME = "log.jsonl"

LockTimeout = Timeout
"""Raised by :meth:`RunLock.acquire` when the lock is not free in time (a :class:`TimeoutError`)."""


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(config: Any, length: int = 12) -> str:
    """Stable hash of a (dataclass or dict) configuration."""
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def read_json_file(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; an empty, truncated or malformed file raises :class:`RunFileError` naming
    it (and how to recover)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFileError(f"{p}: cannot read as JSON ({type(exc).__name__}: {exc}); a run file is written "
                           f"atomically, so it was changed from outside: delete it to recompute that run") from exc
    if not isinstance(obj, dict):
        raise RunFileError(f"{p}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_csv_file(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)``; a missing, empty or malformed file raises :class:`RunFileError` naming it."""
    p = Path(path)
    try:
        return pd.read_csv(p, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise RunFileError(f"{p}: cannot read as CSV ({type(exc).__name__}: {exc}); it was written by asymlib, so "
                           f"it was changed from outside or is missing: delete it (or its run's status.json) to "
                           f"recompute it") from exc


class RunLock:
    """Exclusive inter-process lock on one run directory (the file ``<run>/.lock``).

    A context manager: entering acquires it unless this object already holds it (e.g. from
    :func:`try_lock_run`), leaving releases it. ``timeout=None`` waits indefinitely; ``blocking=False`` makes one
    attempt. A failed acquisition raises :data:`LockTimeout`.
    """

    def __init__(self, run_dir: str | Path, timeout: float | None = None, blocking: bool = True):
        self.path = Path(run_dir) / LOCK_NAME
        self._lock = FileLock(str(self.path), timeout=-1 if timeout is None else timeout, blocking=blocking)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> "RunLock":
        if not self.held:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        return self

    def release(self) -> None:
        if self.held:
            self._lock.release(force=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({self.path}, held={self.held})"


def _parse_log(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Rows of a ``log.jsonl`` and whether its last line was torn (unparseable, dropped).

    Raises:
        ValueError: a line other than the last is not JSON (the file and line are named).
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                return rows, True
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({exc})") from exc
    return rows, False


def _rows_to_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that lacks its newline (a writer killed mid-line), in place."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        fh.truncate(fh.read().rfind(b"\n") + 1)


_TB_GROUPS = (("d_", "d/"), ("l_d", "d/"), ("lr_d", "d/"), ("l_", "loss/"), ("loss", "loss/"), ("lr", "lr/"),
              ("val_", "val/"))


def tensorboard_tag(name: str) -> str:
    """TensorBoard tag of a logged scalar, grouped so that runs compare side by side: generator and metric
    losses under ``loss/``, discriminator values under ``d/``, learning rates under ``lr/``, validation under
    ``val/`` (``l_rec -> loss/l_rec``, ``d_real -> d/d_real``, ``lr -> lr/lr``)."""
    for prefix, group in _TB_GROUPS:
        if name.startswith(prefix):
            return group + name
    return "other/" + name


def flat_hparams(config: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON-like configuration flattened to the scalar types TensorBoard's hyper-parameters accept: dotted
    names, numbers and booleans kept, strings kept, lists and None as text."""
    out: dict[str, Any] = {}
    if isinstance(config, Mapping):
        for k, v in config.items():
            out.update(flat_hparams(v, f"{prefix}{k}."))
        return out
    name = prefix[:-1] or "value"
    out[name] = config if isinstance(config, (bool, int, float, str)) else json.dumps(config)
    return out


class Run:
    """One run directory. Use :func:`open_run`."""

    def __init__(self, path: Path, config: Any, tensorboard: bool = True):
        self.path = path
        self.config = to_jsonable(config)
        self.hash = path.name.rsplit("-", 1)[-1]
        self._tb_enabled = tensorboard
        self._tb = None
        self._log_checked = False

    # -- state ---------------------------------------------------------------------------------------
    @property
    def status(self) -> dict[str, Any] | None:
        p = self.path / "status.json"
        return read_json_file(p) if p.is_file() else None

    @property
    def finished(self) -> bool:
        st = self.status
        return st is not None and st.get("status") in DONE_STATUSES

    def identity(self) -> dict[str, str]:
        """What a checkpoint records to be recognized as this run's: folder name and full config hash."""
        return {"run_name": self.path.name, "config_hash": config_hash(self.config, length=64)}

    def check_identity(self, stored: Mapping[str, Any] | None, source: str | Path) -> None:
        """Refuse a file (``source``) whose recorded identity is another run's; ``None`` (older files) passes.

        Raises:
            CheckpointError: naming ``source``, the run it came from and this run.
        """
        if stored is None:
            return
        mine = self.identity()
        if {k: stored.get(k) for k in mine} != mine:
            raise CheckpointError(
                f"checkpoint {source} belongs to run {stored.get('run_name')!r} (config hash "
                f"{str(stored.get('config_hash'))[:12]}), not to {mine['run_name']!r} (config hash "
                f"{mine['config_hash'][:12]}); it was copied from another run: delete it to restart from scratch")

    # -- concurrency and crash recovery ----------------------------------------------------------------
    def lock(self, timeout: float | None = None, blocking: bool = True) -> RunLock:
        """The run's inter-process lock (not yet acquired); use as ``with run.lock(): ...``.

        Re-check :attr:`finished` once it is held. ``timeout=None`` waits indefinitely, ``blocking=False``
        tries once; both raise :data:`LockTimeout` when the lock stays busy.
        """
        return RunLock(self.path, timeout=timeout, blocking=blocking)

    def remove_orphan_temps(self) -> list[Path]:
        """Delete temporary files of atomic writes killed midway (anywhere in the run folder); hold the lock."""
        return remove_orphan_temps(self.path)

    def truncate_log(self, after_step: int) -> int:
        """Keep the ``log.jsonl`` rows with ``step <= after_step`` and drop a torn last line (atomic rewrite).

        Call it when resuming at step ``after_step`` (``-1`` drops every row), while holding the lock.
        Returns the number of rows dropped.
        """
        p = self.path / LOG_NAME
        if not p.is_file():
            return 0
        rows, torn = _parse_log(p)
        kept = [r for r in rows if int(r.get("step", 0)) <= after_step]
        if torn or len(kept) != len(rows):
            atomic_write_text(p, _rows_to_text(kept))
        self._log_checked = True
        return len(rows) - len(kept)

    def prepare_resume(self, step: int) -> list[Path]:
        """Make the folder ready for training from ``step``: delete orphan temporary files and drop the log rows
        after ``step``. The caller holds the lock. Returns the deleted temporary files."""
        removed = self.remove_orphan_temps()
        self.truncate_log(step)
        return removed

    # -- writing -------------------------------------------------------------------------------------
    def start(self, provenance: Mapping[str, Any]) -> "Run":
        """Write ``config.json`` and ``provenance.json``; orphan temporary files are deleted (hold the lock)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_orphan_temps()
        atomic_write_json(self.path / "config.json", self.config)
        atomic_write_json(self.path / "provenance.json", dict(provenance))
        return self

    def log(self, step: int, **scalars: float) -> None:
        """Append one step's scalars to ``log.jsonl`` and TensorBoard.

        The first call of this object drops a torn last line left by a killed writer before appending.
        """
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        p = self.path / LOG_NAME
        if not self._log_checked:
            if p.is_file():
                _drop_torn_tail(p)
            self._log_checked = True
        append_text(p, json.dumps(row) + "\n")
        tb = self._writer()
        if tb is not None:
            for k, v in scalars.items():
                tb.add_scalar(tensorboard_tag(k), float(v), int(step))

    def _writer(self) -> Any:
        """The run's TensorBoard writer (``<run>/tb``), opened on first use; None when TensorBoard is off."""
        if not self._tb_enabled:
            return None
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.path / "tb"))
        return self._tb

    def log_image(self, tag: str, image: Any, step: int) -> None:
        """A ``(3, H, W)`` image in [0, 1] to TensorBoard (e.g. SR samples at checkpoints); nothing when it is off."""
        tb = self._writer()
        if tb is not None:
            tb.add_image(tag, image.detach().float().clamp(0, 1).cpu(), int(step))

    def log_hparams(self, results: Mapping[str, float] | None = None) -> None:
        """The run's configuration as TensorBoard hyper-parameters (flattened, dotted names), with ``results``
        as the metrics TensorBoard's HParams tab compares runs by (written by :meth:`finish`)."""
        tb = self._writer()
        if tb is None:
            return
        metrics = {f"hparam/{k}": float(v) for k, v in (results or {}).items()}
        tb.add_hparams(flat_hparams(self.config), metrics or {"hparam/finished": 1.0}, run_name=".")

    def read_log(self) -> pd.DataFrame:
        """``log.jsonl`` as a frame, one row per logged step; a torn last line is skipped.

        Raises:
            ValueError: a line before the last is not JSON.
        """
        p = self.path / LOG_NAME
        rows = _parse_log(p)[0] if p.is_file() else []
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["step"])

    def save_checkpoint(self, obj: Any, name: str = "checkpoint.pt") -> Path:
        return atomic_torch_save(obj, self.path / name)

    def write_results(self, rows: pd.DataFrame | list[dict[str, Any]]) -> Path:
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        df = df.assign(run_id=self.path.name)
        return atomic_write_csv(df, self.path / "results.csv")

    def read_results(self) -> pd.DataFrame:
        p = self.path / "results.csv"
        try:
            return pd.read_csv(p)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise RunFileError(f"{p}: cannot read the run's results ({type(exc).__name__}: {exc}); delete "
                               f"{self.path / 'status.json'} to recompute the run") from exc

    def finish(self, status: str = "finished", **info: Any) -> None:
        """Mark the run done (``finished``/``collapsed``) or ``failed``; written last, atomically. TensorBoard
        gets the configuration as hyper-parameters, with the numeric ``info`` and ``finished`` (1/0) as metrics."""
        if self._tb_enabled:
            numeric = {k: v for k, v in info.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.log_hparams({**numeric, "finished": float(status == "finished")})
        self.close()
        atomic_write_json(self.path / "status.json", {"status": status, **to_jsonable(info)})

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def provenance(self) -> dict[str, Any]:
        return read_json_file(self.path / "provenance.json")

    def __repr__(self) -> str:
        return f"Run({self.path}, status={(self.status or {}).get('status', 'open')})"


def open_run(root: str | Path, kind: str, name: str, config: Any, tensorboard: bool = True) -> Run:
    """Open (or create) the run directory of ``config`` under ``root/kind``.

    If a previous attempt did not finish, its partial files (log, checkpoints) are kept so that a trainer
    can resume from them; results are only trusted once :attr:`Run.finished` is true.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = Path(root) / kind / f"{safe}-{config_hash(config)}"
    path.mkdir(parents=True, exist_ok=True)
    return Run(path, config, tensorboard=tensorboard)


def try_lock_run(run: Run) -> RunLock | None:
    """The run's lock, acquired, or ``None`` when another process holds it ("skip if someone else trains it").

    Release it with ``with lock: ...`` (entering does not acquire it again) or :meth:`RunLock.release`; re-check
    :attr:`Run.finished` first.
    """
    lock = run.lock(blocking=False)
    try:
        return lock.acquire()
    except LockTimeout:
        return None


def run_of(log: Callable[..., Any] | None) -> Run | None:
    """The :class:`Run` whose bound :meth:`Run.log` ``log`` is (trainers given ``log=run.log``), else ``None``."""
    owner = getattr(log, "__self__", None)
    return owner if isinstance(owner, Run) else None
