"""The ``asymlib`` console script: ``score`` on image folders, the aliases, and core imports without extras."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch

import asymlib
from asymlib.cli import main
from asymlib.data.corpus import embedded_images
from asymlib.imageio import load_image, save_image
from tests.test_metric import _blur

REPO = Path(__file__).resolve().parent.parent
EXTRAS = ("submitit", "papermill", "ipywidgets", "nbformat", "seaborn", "IPython", "jupyterlab", "ipykernel",
          "nbval", "playwright", "pytest")


@pytest.fixture()
def folders(tmp_path):
    """dist/ and ref/ with three 64x64 pairs: a blurred crop, a noisy crop, and an identical copy."""
    dist, ref = tmp_path / "dist", tmp_path / "ref"
    dist.mkdir()
    ref.mkdir()
    imgs = embedded_images(["astronaut", "chelsea", "coffee"])
    g = torch.Generator().manual_seed(0)
    for name, img in imgs.items():
        crop = img[:, 40:104, 60:124]
        save_image(crop, ref / f"{name}.png")
        if name == "astronaut":
            d = _blur(crop[None], 1.5)[0]
        elif name == "chelsea":
            d = (crop + 0.08 * torch.randn(crop.shape, generator=g)).clamp(0, 1)
        else:
            d = crop
        save_image(d, dist / f"{name}.png")
    (ref / "unused_reference.png").write_bytes((ref / "coffee.png").read_bytes())  # refs may have extras
    return dist, ref


def _direct_scores(dist: Path, ref: Path) -> dict[str, float]:
    metric = asymlib.create_metric("dists", backbone="vgg16", weights="random").eval()
    out = {}
    with torch.no_grad():
        for p in sorted(dist.glob("*.png")):
            out[p.name] = float(metric(load_image(p)[None], load_image(ref / p.name)[None]))
    return out


def test_score_writes_csv_matching_the_metric(folders, tmp_path, capsys):
    dist, ref = folders
    out = tmp_path / "out" / "scores.csv"
    rc = main(["score", "--metric", "DISTS", "--backbone", "vgg16", "--weights", "random", "-t", str(dist),
               "-r", str(ref), "--output", str(out), "--device", "cpu", "--batch-size", "2"])
    assert rc == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["dist", "ref", "score"]
    assert [Path(p).name for p in table["dist"]] == ["astronaut.png", "chelsea.png", "coffee.png"]
    assert all(Path(d).name == Path(r).name and Path(r).parent == ref for d, r in zip(table["dist"], table["ref"]))
    want = _direct_scores(dist, ref)
    got = dict(zip((Path(p).name for p in table["dist"]), table["score"]))
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-6)
    assert got["coffee.png"] < 1e-5 and got["astronaut.png"] > 1e-3 and got["chelsea.png"] > 1e-3
    summary = capsys.readouterr().out
    assert "[score] 3 pairs, dists over vgg16, random(seed=0)" in summary and str(out) in summary
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.csv"]  # atomic write, no temporary left

    # batch size 1 and 3 give the same numbers as batch size 2
    for bs in ("1", "3"):
        other = tmp_path / f"bs{bs}.csv"
        assert main(["score", "--weights", "random", "-t", str(dist), "-r", str(ref), "-o", str(other),
                     "--batch-size", bs]) == 0
        assert pd.read_csv(other)["score"].to_numpy() == pytest.approx(table["score"].to_numpy(), abs=1e-6)


def test_score_errors_name_the_file(folders, tmp_path, capsys):
    dist, ref = folders
    (dist / "orphan.png").write_bytes((dist / "coffee.png").read_bytes())
    assert main(["score", "--weights", "random", "-t", str(dist), "-r", str(ref)]) == 2
    err = capsys.readouterr().err
    assert f"distorted image {dist / 'orphan.png'} has no reference" in err and str(ref / "orphan.png") in err
    (dist / "orphan.png").unlink()
    save_image(torch.rand(3, 64, 80), dist / "chelsea.png")  # now a different size from its reference
    assert main(["score", "--weights", "random", "-t", str(dist), "-r", str(ref)]) == 2
    assert f"{dist / 'chelsea.png'} is 80x64 but its reference" in capsys.readouterr().err
    assert main(["score", "--weights", "random", "-t", str(tmp_path / "nowhere"), "-r", str(ref)]) == 2
    assert "distorted folder not found" in capsys.readouterr().err


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TORCH_HOME": os.environ["TORCH_HOME"],
            "HF_HOME": os.environ["HF_HOME"], "OMP_NUM_THREADS": "2"}


def test_module_entry_point_prints_csv(folders):
    dist, ref = folders
    proc = subprocess.run([sys.executable, "-m", "asymlib.cli", "score", "--weights", "random", "-t", str(dist),
                           "-r", str(ref)], capture_output=True, text=True, timeout=300, env=_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "dist,ref,score" and len(lines) == 4
    scores = {Path(line.split(",")[0]).name: float(line.split(",")[2]) for line in lines[1:]}
    want = _direct_scores(dist, ref)
    assert scores == pytest.approx(want, abs=1e-6)
    assert "[score] 3 pairs" in proc.stderr  # the summary goes to stderr when the CSV goes to stdout


def test_console_script_and_aliases():
    script = Path(sys.executable).parent / "asymlib"
    if not script.exists():
        pytest.skip(f"{script} not installed: run scripts/env.sh (pip install -e '.[all]')")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert all(cmd in proc.stdout for cmd in ("score", "study", "runs", "bench", "check"))
    proc = subprocess.run([str(script), "check", "--help"], capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0 and "python -m asymlib.check" in proc.stdout  # argv reaches the aliased main


def test_aliases_forward_argv(monkeypatch):
    import asymlib.check

    seen = []
    monkeypatch.setattr(asymlib.check, "main", lambda argv: seen.append(argv) or 3)
    assert main(["check", "--profile", "smoke", "--format", "json"]) == 3
    assert seen == [["--profile", "smoke", "--format", "json"]]


def test_core_imports_without_extras_and_extras_declared():
    """asymlib, its CLI and the run tools import with every notebooks/cluster/test package made unimportable."""
    code = (
        "import importlib, sys\n"
        f"BLOCK = {set(EXTRAS)!r}\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCK:\n"
        "            raise ImportError('blocked extra: ' + name)\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "for m in ('asymlib', 'asymlib.cli', 'asymlib.metrics', 'asymlib.pipeline.cli', 'asymlib.pipeline.dispatch',\n"
        "          'asymlib.study', 'asymlib.check', 'asymlib.bench.cli', 'asymlib.widgets', 'asymlib.notebook'):\n"
        "    importlib.import_module(m)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_env(),
                          cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {d.split("=")[0].split(">")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert not core & set(EXTRAS) and not core & {"jupyterlab", "submitit", "seaborn"}
    extras = project["optional-dependencies"]
    assert {"notebooks", "cluster", "test", "all"} <= set(extras)
    assert "submitit>=1.5" in extras["cluster"] and any(d.startswith("papermill") for d in extras["notebooks"])
    assert project["scripts"]["asymlib"] == "asymlib.cli:main"
