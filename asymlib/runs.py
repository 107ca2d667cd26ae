"""Run directories keyed by a hash of their configuration.

Layout of ``<root>/<kind>/<name>-<hash>/``::

    config.json        the full configuration (what the hash covers)
    provenance.json    profile, weights source per backbone, seed, package versions, git commit
    log.jsonl          one JSON object per logged step
    tb/                TensorBoard events (same scalars as log.jsonl)
    results.csv        final results as tidy rows (one observation per row)
    checkpoint*.pt     checkpoints (written atomically)
    status.json        {"status": "finished" | "collapsed" | "failed", ...}; written last

A run counts as done only once ``status.json`` exists, so a crash never leaves a half-written result that
looks finished; re-opening the same config finds the finished run and its results are reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .atomic import atomic_torch_save, atomic_write_csv, atomic_write_json

__all__ = ["config_hash", "to_jsonable", "Run", "open_run"]

DONE_STATUSES = ("finished", "collapsed")


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


class Run:
    """One run directory. Use :func:`open_run`."""

    def __init__(self, path: Path, config: Any, tensorboard: bool = True):
        self.path = path
        self.config = to_jsonable(config)
        self.hash = path.name.rsplit("-", 1)[-1]
        self._tb_enabled = tensorboard
        self._tb = None

    # -- state ---------------------------------------------------------------------------------------
    @property
    def status(self) -> dict[str, Any] | None:
        p = self.path / "status.json"
        return json.loads(p.read_text()) if p.is_file() else None

    @property
    def finished(self) -> bool:
        st = self.status
        return st is not None and st.get("status") in DONE_STATUSES

    # -- writing -------------------------------------------------------------------------------------
    def start(self, provenance: Mapping[str, Any]) -> "Run":
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / "config.json", self.config)
        atomic_write_json(self.path / "provenance.json", dict(provenance))
        return self

    def log(self, step: int, **scalars: float) -> None:
        """Append one step's scalars to ``log.jsonl`` and TensorBoard."""
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        with open(self.path / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb_enabled:
            if self._tb is None:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.path / "tb"))
            for k, v in scalars.items():
                self._tb.add_scalar(k, float(v), int(step))

    def read_log(self) -> pd.DataFrame:
        p = self.path / "log.jsonl"
        if not p.is_file():
            return pd.DataFrame(columns=["step"])
        return pd.read_json(p, lines=True)

    def save_checkpoint(self, obj: Any, name: str = "checkpoint.pt") -> Path:
        return atomic_torch_save(obj, self.path / name)

    def write_results(self, rows: pd.DataFrame | list[dict[str, Any]]) -> Path:
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        df = df.assign(run_id=self.path.name)
        return atomic_write_csv(df, self.path / "results.csv")

    def read_results(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "results.csv")

    def finish(self, status: str = "finished", **info: Any) -> None:
        """Mark the run done (``finished``/``collapsed``) or ``failed``; written last, atomically."""
        self.close()
        atomic_write_json(self.path / "status.json", {"status": status, **to_jsonable(info)})

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def provenance(self) -> dict[str, Any]:
        return json.loads((self.path / "provenance.json").read_text())

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
