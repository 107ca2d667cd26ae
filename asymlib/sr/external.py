"""A scoring worker in another Python environment, driven over pipes (see :mod:`asymlib.sr.deqa_worker`)."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightsUnavailableError

__all__ = ["ExternalWorker", "ExternalWorkerError"]

PREFIX = "@@asymlib "


class ExternalWorkerError(WeightsUnavailableError):
    """The worker could not start, died, or answered with an error; the message names the interpreter and
    quotes the end of its stderr."""


class ExternalWorker:
    """``python script *args`` kept running; :meth:`score` sends it a ``(B, H, W, 3)`` uint8 batch.

    The worker answers ``@@asymlib {"ready": ...}`` once (within ``start_timeout`` seconds) and then one
    ``@@asymlib {"scores": [...]}`` (or ``{"error": ...}``) line per request; other stdout lines are ignored.
    """

    def __init__(self, python: str | Path, script: str | Path, args: list[str], start_timeout: float = 1800.0):
        self.python = str(python)
        self._stderr: deque[str] = deque(maxlen=40)
        try:
            self.proc = subprocess.Popen([self.python, str(script), *args], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as exc:
            raise ExternalWorkerError(f"cannot start {self.python} {script}: {exc}") from exc
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.ready = self._read(start_timeout)
        if "ready" not in self.ready:
            self.close()
            raise ExternalWorkerError(f"{self.python} {Path(script).name} did not start: {self.ready}")

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip())

    def _fail(self, what: str) -> ExternalWorkerError:
        tail = "\n".join(list(self._stderr)[-15:])
        return ExternalWorkerError(f"worker {self.python}: {what}" + (f"\n--- its stderr ---\n{tail}" if tail else ""))

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        result: dict[str, Any] = {}

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                if line.startswith(PREFIX):
                    result.update(json.loads(line[len(PREFIX):]))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self.close()
            raise self._fail(f"no answer within {timeout:.0f} s")
        if not result:
            code = self.proc.wait(timeout=10)
            raise self._fail(f"exited with status {code}")
        return result

    def score(self, batch: np.ndarray, timeout: float = 3600.0) -> np.ndarray:
        """Scores ``(B,)`` float64 of a ``(B, H, W, 3)`` uint8 batch."""
        if self.proc.poll() is not None:
            raise self._fail(f"exited with status {self.proc.returncode}")
        fd, name = tempfile.mkstemp(suffix=".npy", prefix="asymlib-worker-")
        os.close(fd)
        try:
            np.save(name, np.ascontiguousarray(batch, dtype=np.uint8))
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"images": name}) + "\n")
            self.proc.stdin.flush()
            reply = self._read(timeout)
        finally:
            os.unlink(name)
        if "error" in reply:
            raise self._fail(reply["error"])
        scores = np.asarray(reply["scores"], dtype=np.float64).reshape(-1)
        if len(scores) != len(batch):
            raise self._fail(f"returned {len(scores)} scores for {len(batch)} images")
        return scores

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()

    def __del__(self) -> None:
        if getattr(self, "proc", None) is not None:
            self.close()
