"""Dispatching the graph: GPU pooling of the local executor, Slurm job parameters and dependencies, and real
launches on a single-node Slurm (scripts/slurm.sh) and through submitit's local executor."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asymlib.config import get_profile
from asymlib.pipeline import StudyContext, build_graph
from asymlib.pipeline.declare import metric_train_spec, stage1_spec, stage2_spec
from asymlib.pipeline.dispatch import (ClusterOptions, LaunchError, launch_specs, schedule_local, slurm_parameters,
                                       watch_table)
from asymlib.pipeline.costs import DEFAULT_STEP_COSTS, load_step_costs
from asymlib.sr.trainer import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

# metric -> stage 1 -> stage 2 at toy sizes: seconds per run on one CPU core
CHAIN = {"metric_study.synthetic.images": ["astronaut", "chelsea", "coffee", "rocket", "retina"],
         "metric_study.synthetic.distortions": ["gaussian_blur"], "metric_study.train.iterations": 4,
         "sr.stage1.iterations": 3, "sr.stage1.checkpoint_every": 1, "sr.stage1.sample_every": 100,
         "sr.stage2.iterations": 2, "sr.stage2.checkpoint_every": 1, "sr.stage2.sample_every": 100,
         "sr.data.sample_images": 0}


def _sets(overrides: dict) -> list[str]:
    return [f"--set={k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in overrides.items()]


def _chain(prof) -> tuple[str, str, str]:
    graph = build_graph(prof)
    metric = graph.add(metric_train_spec(prof, "vgg16"))
    s1 = graph.add(stage1_spec(prof))
    s2 = graph.add(stage2_spec(prof, graph, "rec+perceptual", "vgg16"))
    return metric, s1, s2


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asymlib.runs", *args], capture_output=True, text=True, cwd=REPO,
                          env=env or _env(), timeout=timeout)


# ----------------------------------------------------------------------------------------------
# GPU pooling (no processes: fake jobs)
# ----------------------------------------------------------------------------------------------
class _FakeCtx:
    def __init__(self):
        self.states: dict[str, str] = {}

    def state(self, key) -> str:
        return self.states.get(key.key if hasattr(key, "key") else key, "missing")


class _Spec:
    def __init__(self, key, deps=()):
        self.key, self.deps, self.kind = key, tuple(deps), "sr"


def _fake_cluster(ctx: _FakeCtx, outcome: dict[str, str] | None = None):
    """A submit function whose jobs end after two polls, checking dependencies and GPU exclusivity."""
    busy: dict[int, str] = {}
    started: list[tuple[str, tuple[int, ...]]] = []
    outcome = outcome or {}

    class Job:
        def __init__(self, key, ids):
            self.key, self.ids, self.polls = key, ids, 0

        def done(self) -> bool:
            self.polls += 1
            if self.polls < 2:
                return False
            for g in self.ids:
                assert busy.pop(g) == self.key
            ctx.states[self.key] = outcome.get(self.key, "finished")
            return True

    def submit(spec, ids):
        for d in spec.deps:
            assert ctx.states.get(d) == "finished", f"{spec.key} started before {d} finished"
        for g in ids:
            assert g not in busy, f"GPU {g} given to {spec.key} while {busy[g]} runs on it"
            busy[g] = spec.key
        started.append((spec.key, ids))
        return Job(spec.key, ids)

    return submit, started


def test_local_pool_runs_one_job_per_gpu_in_dependency_order():
    ctx = _FakeCtx()
    ctx.states["bad"] = "collapsed"
    specs = [_Spec("s1"), _Spec("m"), _Spec("a", ["s1", "m"]), _Spec("b", ["s1", "m"]), _Spec("c", ["s1"]),
             _Spec("d", ["c"]), _Spec("e", ["bad"]), _Spec("f", ["e"])]
    submit, started = _fake_cluster(ctx, {"c": "collapsed"})
    result = schedule_local(ctx, specs, gpus=[3, 1], gpus_per_run=1, submit=submit, poll_s=0, log=lambda s: None)
    assert started[:2] == [("s1", (1,)), ("m", (3,))]  # lowest free id first, two at a time
    assert {k for k, _ in started} == {"s1", "m", "a", "b", "c"}
    assert result["a"] == result["b"] == "finished" and result["c"] == "collapsed"
    assert result["d"].startswith("skipped: dependency c collapsed")
    assert result["e"].startswith("skipped") and result["f"].startswith("skipped")
    # two GPUs per run: whole pairs only, the third GPU stays idle
    ctx2 = _FakeCtx()
    submit2, started2 = _fake_cluster(ctx2)
    res = schedule_local(ctx2, [_Spec("x"), _Spec("y")], gpus=[0, 1, 2], gpus_per_run=2, submit=submit2, poll_s=0,
                         log=lambda s: None)
    assert [ids for _, ids in started2] == [(0, 1), (0, 1)] and set(res.values()) == {"finished"}
    with pytest.raises(LaunchError, match="2 GPU"):
        schedule_local(ctx2, [_Spec("z")], gpus=[0], gpus_per_run=2, submit=submit2, poll_s=0)
    # CPU slots: ids are slots, jobs see no GPU
    ctx3 = _FakeCtx()
    submit3, started3 = _fake_cluster(ctx3)
    schedule_local(ctx3, [_Spec("p"), _Spec("q"), _Spec("r")], gpus=[0, 1], gpus_per_run=0, submit=submit3,
                   poll_s=0, log=lambda s: None)
    assert [ids for _, ids in started3] == [(), (), ()]


# ----------------------------------------------------------------------------------------------
# Slurm parameters and the paper grid's dry run
# ----------------------------------------------------------------------------------------------
def test_slurm_parameters_and_launch_selection(tmp_path):
    prof = get_profile("smoke", **CHAIN)
    ctx = StudyContext(prof, tmp_path, log=None)
    metric, s1, s2 = _chain(prof)
    specs = launch_specs(ctx, [s2])
    assert [s.key for s in specs] == [metric, s1, s2] or [s.key for s in specs] == [s1, metric, s2]
    opts = ClusterOptions(partition="gpu", account="lab", gpus_per_run=4, cpus_per_run=6, mem_gb=64,
                          extra={"mail-type": "FAIL"})
    p = slurm_parameters(ctx.graph[s2], opts, load_step_costs(None), ["11", "12"])
    assert p["dependency"] == "afterok:11:12" and p["gpus-per-node"] == 4 and p["ntasks-per-node"] == 4
    assert (p["partition"], p["account"], p["cpus-per-task"], p["mem"], p["mail-type"]) == ("gpu", "lab", 6, "64G",
                                                                                              "FAIL")
    assert 60 <= p["time"] <= opts.max_time_min
    paper = StudyContext(get_profile("paper"), tmp_path / "p", log=None)
    stage2 = paper.graph.get("sr/rec+perceptual+adv-vgg16")
    expected = int(400_000 * DEFAULT_STEP_COSTS["sr_stage2_adv"] / 60 * 1.5 + 30)  # estimate x 1.5 + 30 min
    assert slurm_parameters(stage2, ClusterOptions(), load_step_costs(None))["time"] == expected
    assert slurm_parameters(stage2, ClusterOptions(max_time_min=600), load_step_costs(None))["time"] == 600
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text("partition: a100\ngpus_per_run: 2\nextra: {qos: high}\n")
    opts = ClusterOptions.from_file(cfg, time_min=90)
    assert (opts.partition, opts.gpus_per_run, opts.time_min, opts.extra["qos"]) == ("a100", 2, 90, "high")
    cfg.write_text("partitoin: a100\n")
    with pytest.raises(Exception, match="unknown option"):
        ClusterOptions.from_file(cfg)


def test_paper_dry_run_prints_every_job_with_its_dependencies(tmp_path):
    out = _cli("launch", "--profile", "paper", "--executor", "slurm", "--dry-run", "--output", str(tmp_path / "p"),
               "--partition", "gpu", "--account", "lab", timeout=180)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("dry-run-")]
    plan = json.loads(_cli("plan", "--profile", "paper", "--format", "json", "--output", str(tmp_path / "p")).stdout)
    assert len(lines) == len(plan) > 150
    assert all("--partition=gpu" in ln and "--account=lab" in ln and "--time=" in ln for ln in lines)
    s1 = next(ln.split()[0] for ln in lines if "sr/stage1-l1-" in ln)
    stage2 = [ln for ln in lines if "sr/rec_perceptual-vgg16-" in ln]
    assert stage2 and s1 in stage2[0]  # stage 2 waits for stage 1's job
    assert "nothing was submitted" in out.stdout and not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------------------------
# Real launches
# ----------------------------------------------------------------------------------------------
def _slurm_conf() -> str:
    status = REPO / "build" / "slurm.status"
    text = status.read_text().strip() if status.is_file() else "unavailable: scripts/slurm.sh start was not run"
    if not text.startswith("ok "):
        pytest.skip(f"Slurm is not available here ({text})")
    return text.split(" ", 1)[1]


def _wait_finished(out: Path, prof, keys, timeout: float = 600) -> None:
    ctx = StudyContext(prof, out, log=None)
    t0 = time.time()
    while time.time() - t0 < timeout:
        states = {k: ctx.state(k) for k in keys}
        if all(s in ("finished", "collapsed", "failed") for s in states.values()):
            assert set(states.values()) == {"finished"}, (states, watch_table(out).to_string())
            return
        time.sleep(2)
    raise AssertionError(f"runs not finished after {timeout} s: {states}\n{watch_table(out).to_string()}")


def _assert_same_weights(a: Path, b: Path) -> None:
    x = torch.load(a, map_location="cpu", weights_only=True)
    y = torch.load(b, map_location="cpu", weights_only=True)
    x, y = (x.get("state_dict", x), y.get("state_dict", y))
    tensors = {k: v for k, v in x.items() if torch.is_tensor(v)}
    assert tensors and all(torch.equal(v, y[k]) for k, v in tensors.items())


def _inline_reference(tmp_path: Path, overrides: dict, key: str) -> Path:
    """The same run trained inline, in a process with the jobs' thread count (float sums depend on it)."""
    ref = tmp_path / "inline"
    res = _cli("launch", "--profile", "smoke", "--executor", "inline", "--runs", key, "--output", str(ref),
               *_sets(overrides))
    assert res.returncode == 0, res.stdout + res.stderr
    return ref


@pytest.mark.slow
def test_slurm_launch_runs_a_dependency_chain_like_inline(tmp_path):
    conf = _slurm_conf()
    prof = get_profile("smoke", **CHAIN)
    metric, s1, s2 = _chain(prof)
    out = tmp_path / "slurm"
    env = {**_env(), "SLURM_CONF": conf}
    res = _cli("launch", "--profile", "smoke", "--executor", "slurm", "--runs", s2, "--output", str(out),
               "--gpus-per-run", "0", "--cpus-per-run", "1", "--time", "15", *_sets(CHAIN), env=env)
    assert res.returncode == 0, res.stderr
    jobs = json.loads((out / "launch.json").read_text())
    assert set(jobs) == {metric, s1, s2} and all(j["executor"] == "slurm" for j in jobs.values())
    assert set(jobs[s2]["after"]) == {jobs[metric]["job_id"], jobs[s1]["job_id"]}
    _wait_finished(out, prof, [metric, s1, s2])
    ref = _inline_reference(tmp_path, CHAIN, s2)
    graph = build_graph(prof)
    _assert_same_weights(graph[metric].path(out) / "metric_weights.pt", graph[metric].path(ref) / "metric_weights.pt")
    _assert_same_weights(graph[s2].path(out) / "generator_ema.pt", graph[s2].path(ref) / "generator_ema.pt")
    table = watch_table(out)
    assert set(table["state"]) == {"finished"} and len(table) == 3


@pytest.mark.slow
def test_cancelled_slurm_job_resumes_to_identical_weights(tmp_path):
    conf = _slurm_conf()
    ov = {**CHAIN, "sr.stage1.iterations": 120, "sr.stage1.checkpoint_every": 2, "sr.stage1.log_every": 1}
    prof = get_profile("smoke", **ov)
    s1 = build_graph(prof).get("sr/stage1-l1")
    out = tmp_path / "slurm"
    env = {**_env(), "SLURM_CONF": conf}
    args = ["launch", "--profile", "smoke", "--executor", "slurm", "--runs", s1.key, "--output", str(out),
            "--gpus-per-run", "0", "--cpus-per-run", "1", "--time", "15", *_sets(ov)]
    assert _cli(*args, env=env).returncode == 0
    job = json.loads((out / "launch.json").read_text())[s1.key]["job_id"]
    ckpt = s1.path(out) / "checkpoint.pt"
    t0 = time.time()
    while not ckpt.is_file() and time.time() - t0 < 300:
        time.sleep(0.5)
    assert ckpt.is_file(), watch_table(out).to_string()
    time.sleep(1)  # a few more steps and checkpoints
    subprocess.run(["scancel", job], env=env, check=True)
    while subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True).stdout.strip():
        time.sleep(1)
    step = load_checkpoint(ckpt)["step"]
    assert 0 < step < 120 and not (s1.path(out) / "status.json").exists()
    assert _cli(*args, env=env).returncode == 0  # relaunch: a new job resumes from the checkpoint
    _wait_finished(out, prof, [s1.key])
    log = [json.loads(line)["step"] for line in (s1.path(out) / "log.jsonl").read_text().splitlines()]
    assert log == list(range(1, 121))  # resumed: no repeated and no missing steps
    ref = _inline_reference(tmp_path, ov, s1.key)
    _assert_same_weights(s1.path(out) / "generator_ema.pt", s1.path(ref) / "generator_ema.pt")


@pytest.mark.slow
def test_local_executor_with_fake_gpu_ids(tmp_path):
    prof = get_profile("smoke", **CHAIN)
    metric, s1, s2 = _chain(prof)
    out = tmp_path / "local"
    res = _cli("launch", "--profile", "smoke", "--executor", "local", "--gpus", "5,7", "--runs", s2,
               "--output", str(out), *_sets(CHAIN))
    assert res.returncode == 0, res.stdout + res.stderr
    jobs = json.loads((out / "launch.json").read_text())
    assert {k: v["executor"] for k, v in jobs.items()} == {metric: "local", s1: "local", s2: "local"}
    assert all(len(v["gpus"]) == 1 and v["gpus"][0] in (5, 7) for v in jobs.values())
    assert "started on GPUs [5]" in res.stdout and "started on GPUs [7]" in res.stdout
    _wait_finished(out, prof, [metric, s1, s2], timeout=5)
