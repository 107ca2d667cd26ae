"""The run graph: stable keys, dependencies, plan and status, the command line, one trainer per run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from asymlib.config import get_profile, parse_overrides
from asymlib.errors import ConfigError, UnknownNameError
from asymlib.pipeline import (RunPending, StudyContext, build_graph, ensure, plan, run_index, run_state)
from asymlib.pipeline.declare import metric_train_spec

REPO = Path(__file__).resolve().parents[1]

# a tiny synthetic benchmark and schedule: metric runs take a few seconds on 2 cores
TINY = {"metric_study.synthetic.images": ["astronaut", "chelsea", "coffee", "rocket", "retina"],
        "metric_study.synthetic.distortions": ["gaussian_blur", "gaussian_noise"],
        "metric_study.train.iterations": 6, "metric_study.n_bootstrap": 20}


def _keys(profile, **overrides) -> dict[str, str]:
    graph = build_graph(get_profile(profile, **overrides))
    return {(s.kind, s.name): s.key for s in graph}


# ----------------------------------------------------------------------------------------------
# Keys
# ----------------------------------------------------------------------------------------------
def test_keys_ignore_settings_that_do_not_change_results(tmp_path):
    base = _keys("smoke")
    # bootstrap counts, logging/checkpoint intervals, workers, batch of evaluation, data root: same keys
    same = _keys("smoke", **{"metric_study.n_bootstrap": 2000, "gan_init.n_bootstrap": 50,
                             "sr.stage2.log_every": 7, "sr.stage2.checkpoint_every": 3,
                             "sr.stage1.num_workers": 2, "metric_study.eval_batch_size": 4,
                             "metric_study.train.log_every": 3, "data_root": str(tmp_path),
                             "figures.n_bootstrap": 10})
    assert same == base
    # a subset of metrics declares fewer runs, each under the key of the full graph
    subset = _keys("smoke", **{"metric_study.metrics": ["vgg16"], "sr.metrics": ["vgg16"]})
    assert subset and all(base[k] == v for k, v in subset.items())
    # --only selects runs of the full graph (with their dependencies), never new keys
    graph = build_graph(get_profile("smoke"))
    only02 = graph.select(["02"])
    assert {s.key for s in only02} <= set(base.values())
    assert any(s.kind == "metric" for s in only02)  # stage 2 depends on notebook 01's metric runs
    with pytest.raises(UnknownNameError, match="matches no notebook"):
        graph.select(["7"])
    # the output folder is not part of any key
    a = plan("smoke", tmp_path / "a")
    b = plan("smoke", tmp_path / "elsewhere" / "b")
    assert list(a["key"]) == list(b["key"]) and a["path"].str.startswith("runs/").all()


def test_keys_change_with_results_and_with_dependencies():
    base = _keys("smoke")
    lr = _keys("smoke", **{"metric_study.train.lr": 1e-3})
    changed = {k for k in base if lr.get(k) != base[k]}
    # the trained metrics, their evaluations and every stage-2 run that uses their alpha/beta
    assert ("metric", "vgg16") in changed and ("metric_eval", "vgg16") in changed
    assert ("metric", "vgg16_r") not in changed  # its alpha/beta are not trained
    assert ("sr", "rec+perceptual-vgg16") in changed and ("sr", "stage1-l1") not in changed
    s1 = _keys("smoke", **{"sr.stage1.lr": 2e-4})
    changed = {k for k in base if s1.get(k) != base[k]}
    stage2 = {k for k in base if k[0] == "sr" and k[1] != "stage1-l1"}
    assert ("sr", "stage1-l1") in changed and stage2 <= changed
    # outside SR only what reads a discriminator trained in SR (the GAN initializations) changes
    outside = {k for k in changed if k[0] in ("metric", "metric_eval", "nr_iqa", "calibration")}
    assert outside and all(k[1].endswith("-gan") for k in outside)
    assert ("metric", "vgg16") not in changed and ("calibration", "piqe") not in changed
    seed = _keys("smoke", seed=1)
    same = {k for k, v in base.items() if seed.get(k) == v}
    assert same == {("calibration", e) for e in ("maniqa", "liqe", "deqa", "vq_r1", "piqe")} | {("sr_eval", "HR")}


def test_graph_shares_runs_between_notebooks_and_orders_dependencies():
    prof = get_profile("smoke")
    graph = build_graph(prof)
    seen: set[str] = set()
    for spec in graph:  # every dependency is declared before its dependants
        assert set(spec.deps) <= seen
        seen.add(spec.key)
    stage2_vgg = graph.find("sr_train", metric="vgg16", stage="stage2")
    stage1 = graph.get("sr/stage1-l1")
    assert stage1.kind == "sr" and graph.get(f"sr/{stage1.key}") is stage1
    assert len(stage2_vgg) > 4 and all(stage1.key in s.deps for s in stage2_vgg)
    # notebook 03's GAN initializations are the exports of notebook 04's Table 3 runs (vanilla head)
    gan_source = [s for s in graph if "gan-source" in s.roles]
    assert [s.params["train"].discriminator.backbone for s in gan_source] == list(prof.gan_init.backbones)
    assert all({"03", "04"} <= set(s.notebooks) and "ablation" in s.roles for s in gan_source)
    vanilla_vgg = gan_source[0]
    assert vanilla_vgg.name == "rec+perceptual+adv-vgg16" and set(vanilla_vgg.notebooks) == {"02", "03", "04"}
    gan_metric = graph.find("metric_train", metric="vgg16", weights="gan")
    assert len(gan_metric) == 1 and gan_metric[0].deps == (vanilla_vgg.key,)
    with pytest.raises(UnknownNameError, match="runs are named"):
        graph.get("vgg16")  # notebook 01's metric and its evaluation share the name
    assert graph.get("metric/vgg16").task == "metric_train" and graph.get("metric_eval/vgg16").deps


def test_paper_plan_lists_the_whole_grid_offline_in_seconds():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "asymlib.runs", "plan", "--profile", "paper", "--format", "json",
                          "--output", "/nonexistent/study"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=REPO)
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    rows = pd.DataFrame(json.loads(out.stdout))
    assert {"key", "kind", "name", "deps", "status", "step", "iterations"} <= set(rows.columns)
    sr = rows[rows["kind"] == "sr"]
    stage2 = sr[sr["name"] != "stage1-l1"]
    assert (sr[sr["name"] == "stage1-l1"]["iterations"] == 100_000).all()
    # Table 1 (4 objectives x 6 metrics) + Table 3 and the Fig. 7 sweep (3 backbones x 6 lambda x 3 seeds)
    assert len(rows[rows["name"].str.match(r"^(perceptual|rec_perceptual)")]) >= 24
    assert len(stage2) >= 24 + 3 * 6 * 3 and (stage2["iterations"] == 400_000).all()
    # nothing run yet; calibrations of evaluators whose weights are not on this machine say so
    assert set(rows["status"]) <= {"missing", "unavailable"} and rows["gpu_hours"].sum() > 500
    assert set(rows.loc[rows["status"] == "unavailable", "kind"]) <= {"calibration"}
    assert len(rows[rows["kind"] == "nr_iqa"]) == 2 * 3 * 3
    assert seconds < 60


# ----------------------------------------------------------------------------------------------
# Overrides
# ----------------------------------------------------------------------------------------------
def test_dotted_overrides_parse_and_validate():
    ov = parse_overrides(["sr.stage2.iterations=8", "sr.metrics=[vgg16, swin_t]", "sr.stage2.lr=1e-3", "seed=2"])
    assert ov == {"sr.stage2.iterations": 8, "sr.metrics": ["vgg16", "swin_t"], "sr.stage2.lr": 1e-3, "seed": 2}
    p = get_profile("smoke", **ov)
    assert p.sr.stage2.iterations == 8 and p.sr.metrics == ("vgg16", "swin_t") and p.seed == 2
    with pytest.raises(ConfigError, match="iterations"):
        get_profile("smoke", **{"sr.stage2.iterations": "8"})  # no silent coercion of strings
    with pytest.raises(ConfigError, match="iterations"):
        get_profile("smoke", **{"sr.stage2.iterations": 3.5})
    with pytest.raises(ConfigError, match="finite"):
        get_profile("smoke", **{"sr.stage2.lr": float("nan")})
    with pytest.raises(ConfigError, match="no field 'stage3'"):
        get_profile("smoke", **{"sr.stage3.iterations": 1})
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_overrides(["sr.stage2.iterations"])


def test_yaml_config_file_is_the_same_override_surface(tmp_path):
    from asymlib.config import load_overrides

    cfg = tmp_path / "study.yaml"
    cfg.write_text("sr:\n  stage2: {iterations: 8, lr: 1e-3}\n  metrics: [vgg16, swin_t]\nseed: 2\n"
                   "discriminators.train_overrides: {checkpoint_every: 3}\n")
    ov = load_overrides(cfg)
    assert ov == {"sr.stage2.iterations": 8, "sr.stage2.lr": 1e-3, "sr.metrics": ["vgg16", "swin_t"], "seed": 2,
                  "discriminators.train_overrides": {"checkpoint_every": 3}}
    from_file = json.loads(subprocess.run(
        [sys.executable, "-m", "asymlib.runs", "plan", "--profile", "smoke", "--format", "json", "--config", str(cfg),
         "--output", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, timeout=120).stdout)
    direct = plan("smoke", tmp_path / "o", overrides=ov)
    assert [r["key"] for r in from_file] == list(direct["key"])
    cfg.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_overrides(cfg)


# ----------------------------------------------------------------------------------------------
# Training through the graph
# ----------------------------------------------------------------------------------------------
def test_ensure_trains_dependencies_reports_status_and_survives_a_move(tmp_path):
    prof = get_profile("smoke", **TINY)
    out = tmp_path / "study"
    ctx = StudyContext(prof, out, log=None, progress=False)
    train = ctx.graph.add(metric_train_spec(prof, "vgg16"))
    evaluation = next(s.key for s in ctx.graph if s.kind == "metric_eval" and s.deps == (train,))
    with pytest.raises(RunPending, match="python -m asymlib.runs train"):
        ensure(ctx, evaluation, train_missing=False)
    run = ensure(ctx, evaluation)
    assert run.finished and ctx.finished(train)
    df = plan(prof, out, only=["01"])
    done = df[df["key"].isin([train, evaluation])]
    assert (done["status"] == "finished").all() and (done["gpu_hours"] == 0).all()
    assert set(df.loc[~df["key"].isin([train, evaluation]), "status"]) == {"missing"}
    log = [json.loads(line)["step"] for line in (out / "runs" / "metric" / train / "log.jsonl").read_text().splitlines()]
    assert log == sorted(set(log))
    cfg = json.loads((out / "runs" / "metric" / train / "config.json").read_text())
    assert cfg["key"] == train and cfg["deps"] == [] and "/" not in json.dumps(cfg["identity"]).replace("\\/", "")
    idx = run_index(out)
    assert set(idx["key"]) == {train, evaluation} and (idx["status"] == "finished").all()
    assert idx["path"].str.startswith("runs/").all()
    # a moved output folder keeps every run: same keys, same status, nothing retrained
    moved = tmp_path / "moved" / "study"
    shutil.move(str(out), str(moved))
    again = plan(prof, moved, only=["01"])
    assert set(again.loc[again["key"].isin([train, evaluation]), "status"]) == {"finished"}
    mtime = (moved / "runs" / "metric_eval" / evaluation / "results.csv").stat().st_mtime_ns
    ensure(StudyContext(prof, moved, log=None), evaluation)
    assert (moved / "runs" / "metric_eval" / evaluation / "results.csv").stat().st_mtime_ns == mtime


def test_partial_run_status(tmp_path):
    run_dir = tmp_path / "runs" / "sr" / "x-123"
    assert run_state(run_dir)[0] == "missing"
    run_dir.mkdir(parents=True)
    (run_dir / "log.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')  # torn last line
    assert run_state(run_dir)[:2] == ("partial", 2)
    (run_dir / "status.json").write_text(json.dumps({"status": "collapsed", "step": 3, "reason": "d_loss"}))
    assert run_state(run_dir) == ("collapsed", 3, "d_loss")


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asymlib.runs", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})


def _sets() -> list[str]:
    return [f"--set={k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in TINY.items()]


def test_cli_train_refuses_missing_dependencies_then_trains_once_from_two_processes(tmp_path):
    out = tmp_path / "study"
    prof = get_profile("smoke", **TINY)
    graph = build_graph(prof)
    train = graph.add(metric_train_spec(prof, "vgg16"))
    evaluation = next(s.key for s in graph if s.kind == "metric_eval" and s.deps == (train,))
    refused = _cli("train", evaluation, "--profile", "smoke", "--output", str(out), *_sets())
    assert refused.returncode == 2 and train in refused.stderr and "--with-deps" in refused.stderr
    assert not (out / "runs" / "metric_eval" / evaluation / "status.json").exists()
    # two workers on the same run: one trains it, the other waits for the lock and finds it finished
    cmd = [sys.executable, "-m", "asymlib.runs", "train", train, "--profile", "smoke", "--output", str(out), *_sets()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained_lines = sum(o.count(f"metric/{train}: finished") for o, _ in outs)
    assert trained_lines == 1, outs
    steps = [json.loads(line)["step"] for line in
             (out / "runs" / "metric" / train / "log.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps))  # one training, no repeated steps
    assert not list((out / "runs" / "metric" / train).glob(".*.tmp"))
    ok = _cli("train", evaluation, "--profile", "smoke", "--output", str(out), *_sets())
    assert ok.returncode == 0, ok.stderr
    status = _cli("status", "--output", str(out), "--format", "json")
    rows = json.loads(status.stdout)
    assert {r["key"]: r["status"] for r in rows} == {train: "finished", evaluation: "finished"}


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """Absolute names of the asymlib modules a file imports (relative imports resolved)."""
    import ast

    pkg = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        pkg = ".".join(path.relative_to(REPO).parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {n for n in out if n.startswith("asymlib")}


def test_layers_are_one_way():
    core = ["backbones", "metrics", "discriminators", "sr", "iqa", "data", "analysis"]
    for name in core:
        target = REPO / "asymlib" / name
        for f in ([target.with_suffix(".py")] if target.with_suffix(".py").is_file() else target.rglob("*.py")):
            bad = {i for i in _imports(f) if i.startswith(("asymlib.pipeline", "asymlib.experiments"))}
            assert not bad, f"core module {f} imports {bad}"
    for f in (REPO / "asymlib" / "pipeline").rglob("*.py"):
        bad = {i for i in _imports(f) if i.startswith("asymlib.experiments")}
        assert not bad, f"{f} imports {bad}"
    mods = {f.stem for f in (REPO / "asymlib" / "experiments").glob("*.py") if f.stem != "__init__"}
    for f in (REPO / "asymlib" / "experiments").glob("*.py"):
        others = {i for i in _imports(f) if any(i.startswith(f"asymlib.experiments.{m}") for m in mods - {f.stem})}
        assert not others, f"{f.name} imports another notebook module: {others}"


def test_without_training_notebooks_list_pending_runs_and_create_nothing(tmp_path):
    from asymlib.experiments.metric_construction import run_metric_study
    from asymlib.notebook import setup_notebook

    prof = get_profile("smoke", **TINY)
    df = run_metric_study(prof, tmp_path, metrics=["vgg16"], train_missing=False)
    assert list(df["status"]) == ["pending"] and df["srcc"].isna().all()
    assert not (tmp_path / "runs").exists()
    ctx = setup_notebook("paper", str(tmp_path / "paper"), str(tmp_path / "figs"))
    assert ctx.train_missing is False and ctx.profile.name == "paper"
    pending = ctx.pending("02")
    assert len(pending) > 24 and set(pending["status"]) == {"missing"}
    assert setup_notebook("smoke", str(tmp_path / "s"), str(tmp_path / "f")).train_missing is True


def test_rendering_pending_sr_runs_creates_no_run_folder(tmp_path):
    from asymlib.experiments.sr_optimization import run_training

    ctx = StudyContext(get_profile("smoke", **{"sr.metrics": ["vgg16"], "sr.settings": ["perceptual"]}), tmp_path,
                       log=None)
    runs = run_training(ctx, train_missing=False)
    assert list(runs["status"]) == ["missing", "missing"] and list(runs["stage"]) == ["stage1", "stage2"]
    assert runs["run_dir"].str.startswith("runs/sr/").all()
    assert not (tmp_path / "runs").exists()


def test_a_damaged_status_file_is_named_not_a_bare_json_error(tmp_path):
    from asymlib.errors import RunFileError
    from asymlib.runs import Run

    prof = get_profile("smoke", **TINY)
    ctx = StudyContext(prof, tmp_path, log=None, progress=False)
    key = ctx.graph.add(metric_train_spec(prof, "vgg16_r"))
    run_dir = ctx.graph[key].path(tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text('{"status": "fini')  # truncated from outside
    state, _, reason = run_state(run_dir)
    assert state == "corrupt" and str(run_dir / "status.json") in reason and "delete it" in reason
    assert plan(prof, tmp_path, only=["01"]).set_index("key").loc[key, "status"] == "corrupt"
    with pytest.raises(RunFileError, match="status.json"):
        Run(run_dir, {}).finished
    with pytest.raises(RunFileError, match="status.json"):
        ensure(ctx, key)
    (run_dir / "status.json").unlink()  # the remedy the message gives
    assert ensure(ctx, key).finished
    (run_dir / "results.csv").write_bytes(b"\x00\xff")
    with pytest.raises(RunFileError, match="results.csv"):
        Run(run_dir, {}).read_results()
