"""The study as a graph of declared runs, with stable keys.

Every unit of work of the study is a :class:`RunSpec`: its ``task`` (what trains it), the configuration fields
that change its result (``identity``) and the runs it depends on (``deps``, by key). Its key is
``<name>-<hash>`` where the hash covers exactly ``task``, ``identity`` and the dependencies' keys: changing
stage 1 changes every stage-2 key and nothing else does; the run's name, the output folder, ``--only``, metric
subsets, bootstrap counts, logging and checkpoint intervals, worker counts and data paths do not. Identities
hold no absolute path. Two declarations with the same hash are one run (notebook 04's vanilla VGG-16 cell is
notebook 02's ``rec+perceptual+adv-vgg16`` run).

:func:`build_graph` declares the whole study of a profile without training anything.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Profile
from ..errors import ConfigError, UnknownNameError
from ..runs import to_jsonable

__all__ = ["RunSpec", "RunGraph", "build_graph", "run_hash", "NOTEBOOKS", "SR_EXECUTION_FIELDS",
           "METRIC_EXECUTION_FIELDS", "NR_EXECUTION_FIELDS"]

NOTEBOOKS = {"01": "01_metric_construction", "02": "02_sr_optimization", "03": "03_gan_initialization",
             "04": "04_discriminator_ablation", "05": "05_figures"}

# Fields of the training configurations that do not change a run's result (they are left out of its key).
SR_EXECUTION_FIELDS = ("checkpoint_every", "log_every", "sample_every", "num_workers", "compile", "channels_last",
                       "keep_checkpoint")
METRIC_EXECUTION_FIELDS = ("log_every",)
NR_EXECUTION_FIELDS = ("log_every", "num_workers", "eval_batch_size")


def run_hash(task: str, identity: Mapping[str, Any], deps: Iterable[str], length: int = 12) -> str:
    """Hash of a run's task, result-affecting fields and dependency keys (order of ``deps`` is irrelevant)."""
    text = json.dumps({"task": task, "identity": to_jsonable(identity), "deps": sorted(deps)}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@dataclass(frozen=True)
class RunSpec:
    """One declared run.

    Attributes:
        kind: folder under ``<output>/runs`` (``metric``, ``metric_eval``, ``sr``, ``calibration``, ``sr_eval``,
            ``nr_iqa``, ``analysis``).
        task: the executor that trains it (:data:`asymlib.pipeline.execute.EXECUTORS`).
        name: human-readable name, the key's prefix.
        identity: the fields that change its result (JSON-able, no absolute paths).
        deps: keys of the runs it needs, finished, before it starts.
        notebooks: the notebooks (``"01"``..``"05"``) whose tables use it.
        iterations: optimizer steps it takes (0: no training loop).
        cost: row of the step-cost table for the GPU-hour estimate.
        roles: what it is in its notebooks (``base``, ``ablation``, ``sweep``, ``gan-source``...).
        params: what the executor needs beyond ``identity`` (full configs with their execution fields); not hashed.
    """

    kind: str
    task: str
    name: str
    identity: Mapping[str, Any]
    deps: tuple[str, ...] = ()
    notebooks: tuple[str, ...] = ()
    iterations: int = 0
    cost: str = ""
    roles: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def hash(self) -> str:
        return run_hash(self.task, self.identity, self.deps)

    @property
    def key(self) -> str:
        return f"{_safe(self.name)}-{self.hash}"

    def path(self, output_dir: str | Path) -> Path:
        """``<output_dir>/runs/<kind>/<key>``."""
        return Path(output_dir) / "runs" / self.kind / self.key

    def relpath(self) -> str:
        """The run folder relative to the output folder (what tables record)."""
        return f"runs/{self.kind}/{self.key}"

    def record(self) -> dict[str, Any]:
        """What ``config.json`` holds: key, kind, task, name, identity and dependency keys."""
        return {"key": self.key, "kind": self.kind, "task": self.task, "name": self.name,
                "identity": to_jsonable(self.identity), "deps": list(self.deps)}


class RunGraph:
    """The declared runs of one profile in dependency order (a dependency is always declared first)."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self._runs: dict[str, RunSpec] = {}
        self._by_hash: dict[str, str] = {}

    def add(self, spec: RunSpec) -> str:
        """Declare ``spec`` (merging notebooks and roles into an identical earlier run); returns its key."""
        missing = [d for d in spec.deps if d not in self._runs]
        if missing:
            raise ConfigError(f"run {spec.name!r} depends on undeclared runs {missing}")
        h = spec.hash
        if h in self._by_hash:
            key = self._by_hash[h]
            old = self._runs[key]
            self._runs[key] = dataclasses.replace(
                old, notebooks=tuple(dict.fromkeys(old.notebooks + spec.notebooks)),
                roles=tuple(dict.fromkeys(old.roles + spec.roles)))
            return key
        self._by_hash[h] = spec.key
        self._runs[spec.key] = spec
        return spec.key

    def __getitem__(self, key_or_name: str) -> RunSpec:
        return self.get(key_or_name)

    def get(self, key_or_name: str) -> RunSpec:
        """A run by key, by ``kind/key``, or by name (``stage1-l1``, ``sr/stage1-l1``) when that is unique."""
        kind, _, rest = key_or_name.rpartition("/")
        if key_or_name in self._runs:
            return self._runs[key_or_name]
        if kind and rest in self._runs and self._runs[rest].kind == kind:
            return self._runs[rest]
        named = [s for s in self._runs.values() if s.name == rest and (not kind or s.kind == kind)]
        if len(named) == 1:
            return named[0]
        if named:
            raise UnknownNameError(f"{len(named)} runs are named {key_or_name!r}; use a key or kind/name: "
                                   f"{[f'{s.kind}/{s.key}' for s in named]}")
        raise UnknownNameError(f"no run {key_or_name!r} in the {self.profile.name} graph "
                               f"(`python -m asymlib.runs plan --profile {self.profile.name}` lists them)")

    def __contains__(self, key: str) -> bool:
        return key in self._runs

    def __iter__(self) -> Iterator[RunSpec]:
        return iter(self._runs.values())

    def __len__(self) -> int:
        return len(self._runs)

    def closure(self, keys: Iterable[str]) -> list[RunSpec]:
        """``keys`` and everything they depend on, in dependency order."""
        want: set[str] = set()
        stack = list(keys)
        while stack:
            k = stack.pop()
            if k not in want:
                want.add(k)
                stack.extend(self._runs[k].deps)
        return [s for s in self._runs.values() if s.key in want]

    def select(self, only: Sequence[str] | None = None) -> list[RunSpec]:
        """The runs of notebooks ``only`` (prefixes such as ``"02"``) with their dependencies; all when ``None``."""
        if not only:
            return list(self._runs.values())
        unknown = [o for o in only if not any(nb.startswith(o) or name.startswith(o)
                                              for nb, name in NOTEBOOKS.items())]
        if unknown:
            raise UnknownNameError(f"--only {unknown} matches no notebook; notebooks: {list(NOTEBOOKS.values())}")
        chosen = [s.key for s in self._runs.values()
                  if any(nb.startswith(o) or NOTEBOOKS[nb].startswith(o) for nb in s.notebooks for o in only)]
        return self.closure(chosen)

    def find(self, task: str | None = None, **identity: Any) -> list[RunSpec]:
        """Runs whose task and identity fields equal the given ones."""
        out = []
        for s in self._runs.values():
            if task is not None and s.task != task:
                continue
            if all(to_jsonable(s.identity.get(k)) == to_jsonable(v) for k, v in identity.items()):
                out.append(s)
        return out


def build_graph(profile: Profile) -> RunGraph:
    """Every run of the study of ``profile`` (notebooks 01-05), declared without training anything."""
    from .declare import declare_analysis, declare_discriminators, declare_gan_init, declare_metrics, declare_sr

    graph = RunGraph(profile)
    declare_metrics(graph)
    declare_sr(graph)
    declare_discriminators(graph)
    declare_gan_init(graph)
    declare_analysis(graph)
    return graph
