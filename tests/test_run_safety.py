"""Run directories under concurrency and crashes: locks, clean logs on resume, orphan temporary files, file
modes, foreign checkpoints, and a SIGKILLed SR run that resumes cleanly."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

from asymlib.atomic import (atomic_torch_save, atomic_write_csv, atomic_write_json, atomic_write_text, current_umask,
                            remove_orphan_temps)
from asymlib.errors import CheckpointError
from asymlib.runs import LockTimeout, Run, open_run, run_of, try_lock_run
from asymlib.sr.trainer import load_checkpoint, train_sr

from tests._tiny_sr import tiny_cfg, tiny_images, tiny_model

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, procs: list[subprocess.Popen], seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        for p in procs:
            assert p.poll() is None, p.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _orphan(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.write(fd, b"half-written")
    os.close(fd)
    return Path(tmp)


# ---------------------------------------------------------------------------------------------- locks
_FAKE_TRAINER = """
    import sys, time
    from pathlib import Path
    from asymlib.runs import open_run

    root, worker = Path(sys.argv[1]), sys.argv[2]
    run = open_run(root, "fake", "once", {"x": 1}, tensorboard=False)
    (root / f"ready-{worker}").write_text("")
    while not (root / "go").exists():
        time.sleep(0.01)
    with run.lock():
        if run.finished:
            print("skipped")
        else:
            time.sleep(0.5)
            with open(root / "counter.txt", "a") as fh:
                fh.write(worker + "\\n")
            run.finish("finished", worker=worker)
            print("trained")
"""


def test_two_processes_train_the_same_run_exactly_once(tmp_path):
    procs = [_python(_FAKE_TRAINER, str(tmp_path), w) for w in ("a", "b")]
    for w in ("a", "b"):
        _wait_for(tmp_path / f"ready-{w}", procs)
    (tmp_path / "go").write_text("")
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
        outs.append(out.strip())
    assert sorted(outs) == ["skipped", "trained"]
    assert len((tmp_path / "counter.txt").read_text().split()) == 1
    run = open_run(tmp_path, "fake", "once", {"x": 1}, tensorboard=False)
    assert run.finished and run.status["worker"] in ("a", "b")


_TRY_LOCK = """
    import sys
    from asymlib.runs import LockTimeout, open_run, try_lock_run

    run = open_run(sys.argv[1], "fake", "busy", {"x": 2}, tensorboard=False)
    lock = try_lock_run(run)
    if lock is None:
        try:
            with run.lock(timeout=0.2):
                print("acquired")
        except LockTimeout:
            print("busy")
    else:
        with lock:
            print("free", lock.held)
        print("released", lock.held)
"""


def test_try_lock_skips_a_run_held_by_another_process(tmp_path):
    run = open_run(tmp_path, "fake", "busy", {"x": 2}, tensorboard=False)
    with run.lock() as lock:
        assert lock.held and (run.path / ".lock").exists()
        out, err = _python(_TRY_LOCK, str(tmp_path)).communicate(timeout=60)
        assert out.split() == ["busy"], err[-2000:]
    assert not lock.held
    out, err = _python(_TRY_LOCK, str(tmp_path)).communicate(timeout=60)
    assert out.split() == ["free", "True", "released", "False"], err[-2000:]
    held = try_lock_run(run)
    assert held is not None and held.held
    held.release()
    assert not held.held and issubclass(LockTimeout, TimeoutError)


# ---------------------------------------------------------------------------------------------- logs
def test_read_log_tolerates_a_torn_last_line(tmp_path):
    run = open_run(tmp_path, "fake", "torn", {"x": 3}, tensorboard=False)
    run.log(1, loss=0.5)
    run.log(2, loss=0.25)
    with open(run.path / "log.jsonl", "a") as fh:
        fh.write('{"step": 3, "lo')  # killed mid-line
    assert list(run.read_log()["step"]) == [1, 2]
    again = Run(run.path, {"x": 3}, tensorboard=False)
    again.log(3, loss=0.125)  # the first append drops the torn tail
    assert list(again.read_log()["step"]) == [1, 2, 3]
    assert list(again.read_log()["loss"]) == [0.5, 0.25, 0.125]

    (run.path / "log.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl: line 2"):
        run.read_log()
    (run.path / "log.jsonl").write_text("")
    assert list(run.read_log().columns) == ["step"] and run.read_log().empty


def test_truncate_log_drops_rows_after_the_resumed_step(tmp_path):
    run = open_run(tmp_path, "fake", "trunc", {"x": 4}, tensorboard=False)
    assert run.truncate_log(3) == 0  # no log yet
    for s in range(1, 6):
        run.log(s, loss=float(s))
    with open(run.path / "log.jsonl", "a") as fh:
        fh.write('{"step": 6, "loss"')
    assert run.truncate_log(3) == 2
    assert (run.path / "log.jsonl").read_text().endswith("\n")
    for s in (4, 5):  # the resumed run logs these steps again
        run.log(s, loss=float(s))
    steps = [json.loads(line)["step"] for line in (run.path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    assert run.truncate_log(-1) == 5 and run.read_log().empty
    assert not list(run.path.glob(".*.tmp"))


def test_run_of_finds_the_run_behind_a_log_callback(tmp_path):
    run = open_run(tmp_path, "fake", "cb", {"x": 5}, tensorboard=False)
    assert run_of(run.log) is run
    assert run_of(print) is None and run_of(None) is None and run_of(lambda *a, **k: None) is None


def _stale_log(run: Run) -> None:
    for s in (1, 2, 3):
        run.log(s, loss=9.0)
    with open(run.path / "log.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')


def test_alpha_beta_training_restarted_in_a_run_does_not_repeat_steps(tmp_path):
    from asymlib.iqa.train import MetricTrainConfig, PairTerms, train_metric_weights
    from asymlib.metrics.dists import DISTSMetric

    class _FakeBackbone(torch.nn.Module):
        channels, name, display, min_size = [2], "fake", "Fake", 1

    metric = DISTSMetric.__new__(DISTSMetric)
    torch.nn.Module.__init__(metric)
    metric.chns, metric.backbone = [3, 2], _FakeBackbone()
    metric.alpha = torch.nn.Parameter(torch.full((1, 5, 1, 1), 0.1))
    metric.beta = torch.nn.Parameter(torch.full((1, 5, 1, 1), 0.1))
    gen = torch.Generator().manual_seed(0)
    terms = PairTerms(torch.rand(16, 5, generator=gen), torch.rand(16, 5, generator=gen),
                      torch.rand(16, generator=gen), None)
    run = open_run(tmp_path, "metric", "restart", {"x": 7}, tensorboard=False)
    _stale_log(run)  # an interrupted attempt
    cfg = MetricTrainConfig(iterations=4, batch_size=8, lr=1e-2, lr_halve_every=100, log_every=2)
    train_metric_weights(metric, terms, cfg, seed=0, log=run.log)
    assert list(run.read_log()["step"]) == [2, 4]


def test_nr_training_restarted_in_a_run_does_not_repeat_steps(tmp_path):
    import numpy as np

    from asymlib.iqa.nr import NRTrainConfig, SyntheticNRDataset, create_nr_model, train_nr_model
    from asymlib.iqa.synthetic import SyntheticFRBenchmark

    bench = SyntheticFRBenchmark(image_names=["astronaut", "chelsea"], distortions=["gaussian_blur"], crop=64)
    data = SyntheticNRDataset(bench)
    train, val = data.subset(np.arange(0, 6)), data.subset(np.arange(6, 10))
    run = open_run(tmp_path, "nr_iqa", "restart", {"x": 8}, tensorboard=False)
    _stale_log(run)
    cfg = NRTrainConfig(iterations=2, batch_size=2, crop=64, eval_every=2, hidden=8, log_every=1)
    train_nr_model(create_nr_model("vgg16", seed=0, hidden=8), train, val, cfg, log=run.log)
    log = run.read_log()
    assert list(log["step"]) == [0, 1, 2, 2] and log["val_srcc"].notna().sum() == 2


# ---------------------------------------------------------------------------------------------- temporary files
def test_orphan_temporary_files_are_removed(tmp_path):
    run = open_run(tmp_path, "fake", "orphans", {"x": 6}, tensorboard=False)
    orphans = [_orphan(run.path, "checkpoint.pt"), _orphan(run.path / "samples", "step_0000002.png")]
    keep = [run.path / ".notes.tmp", run.path / "data.tmp", run.path / ".lock"]
    for p in keep:
        p.write_text("mine")
    assert sorted(remove_orphan_temps(run.path)) == sorted(orphans)
    assert not any(p.exists() for p in orphans) and all(p.exists() for p in keep)
    assert remove_orphan_temps(tmp_path / "missing") == []

    top, nested = _orphan(run.path, "config.json"), _orphan(run.path / "samples", "step_0000004.png")
    assert remove_orphan_temps(run.path, recursive=False) == [top] and nested.exists()
    orphan = _orphan(run.path, "status.json")
    run.start({"profile": "test"})
    assert not orphan.exists() and not nested.exists()
    orphan = _orphan(run.path, "generator.pt")
    assert run.prepare_resume(0) == [orphan] and not orphan.exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    import pandas as pd

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
        files = [atomic_write_text(tmp_path / "a.txt", "x"), atomic_write_json(tmp_path / "a.json", {"a": 1}),
                 atomic_torch_save({"t": torch.zeros(1)}, tmp_path / "a.pt"),
                 atomic_write_csv(pd.DataFrame({"a": [1]}), tmp_path / "a.csv")]
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == want
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == want, f
    assert current_umask() == old


# ---------------------------------------------------------------------------------------------- SR checkpoints
def _train(run: Run):
    return train_sr(run, tiny_cfg(iterations=2), "safety", generator=tiny_model(), train_data=tiny_images(),
                    device="cpu",
                    progress=False)


def test_a_checkpoint_copied_from_another_run_is_refused(tmp_path):
    src = open_run(tmp_path, "sr", "source", {"t": "source"}, tensorboard=False)
    assert _train(src).status == "finished"
    ck = load_checkpoint(src.path / "checkpoint.pt", run=src)
    assert ck["run"] == src.identity() and ck["run"]["run_name"] == src.path.name

    dst = open_run(tmp_path, "sr", "target", {"t": "target"}, tensorboard=False)
    shutil.copy(src.path / "checkpoint.pt", dst.path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="copied from another run") as info:
        _train(dst)
    assert str(dst.path / "checkpoint.pt") in str(info.value) and src.path.name in str(info.value)
    assert not dst.finished and dst.status["status"] == "failed"

    impostor = Run(src.path, {"t": "other config"}, tensorboard=False)  # same folder, another config
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(src.path / "checkpoint.pt", run=impostor)

    legacy = {k: v for k, v in ck.items() if k != "run"}  # written before checkpoints recorded their run
    atomic_torch_save(legacy, dst.path / "checkpoint.pt")
    res = _train(dst)
    assert res.status == "finished" and res.info["resumed_from"] == 2


_KILLED_SR = """
    import sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from asymlib.runs import open_run
    from asymlib.sr.config import SRTrainConfig
    from asymlib.sr.models import create_sr_model
    from asymlib.sr.trainer import train_sr

    root, mode = sys.argv[1], sys.argv[2]
    cfg = SRTrainConfig(iterations=5, batch_size=2, hr_crop=32, milestones=(3,), lambda_rec=1.0, lambda_per=0.0,
                        lambda_adv=0.0, checkpoint_every=2, log_every=1, sample_every=100, num_workers=0,
                        ema_decay=0.5)
    g = torch.Generator().manual_seed(0)
    images = {f"img{i}": torch.rand(3, 80, 80, generator=g) for i in range(3)}
    run = open_run(root, "sr", "killed", {"test": "killed"})
    torch.manual_seed(0)
    model = create_sr_model(preset="small", depths=(2, 2), num_heads=(6, 6))

    def on_step(step, scalars):
        if mode == "block" and step == 3:  # step 3 is logged, the checkpoint holds step 2: wait to be killed
            Path(root, "blocked").write_text("3")
            time.sleep(120)

    with run.lock():
        res = train_sr(run, cfg, "killed", generator=model, train_data=images, seed=0, device="cpu",
                       progress=False, on_step=on_step)
    print(res.status, res.step, res.info.get("resumed_from"))
"""


def test_killed_sr_run_resumes_with_a_clean_log_and_no_temporary_files(tmp_path):
    victim = _python(_KILLED_SR, str(tmp_path), "block")
    _wait_for(tmp_path / "blocked", [victim], seconds=90)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run_dir = next((tmp_path / "sr").iterdir())
    log = run_dir / "log.jsonl"
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 2
    with open(log, "a") as fh:  # as if killed in the middle of writing step 4's row
        fh.write('{"step": 4, "l_re')
    orphans = [_orphan(run_dir, "checkpoint.pt"), _orphan(run_dir / "samples", "step_0000004.png")]

    out, err = _python(_KILLED_SR, str(tmp_path), "normal").communicate(timeout=180)
    assert out.split()[-3:] == ["finished", "5", "2"], err[-2000:]
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    run = Run(run_dir, {"test": "killed"}, tensorboard=False)
    assert list(run.read_log()["step"]) == [1, 2, 3, 4, 5]
    assert not any(p.exists() for p in orphans) and not list(run_dir.rglob("*.tmp"))
    assert run.finished and load_checkpoint(run_dir / "checkpoint.pt", run=run)["step"] == 4
