"""The study runner executes notebooks with papermill and names the failing notebook and cell."""
from __future__ import annotations

import os

import nbformat
import pytest

from asymlib.study import main


def _write_nb(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'\noutput_dir = None\nfigures_dir = None",
                                          metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_runner_executes_in_order_and_reports_failing_cell(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _write_nb(nbs / "01_ok.ipynb", ["from pathlib import Path\nPath(output_dir, 'ok.txt').write_text(profile)"])
    _write_nb(nbs / "02_bad.ipynb", ["x = 1", "raise ValueError('broken on purpose')"])
    _write_nb(nbs / "03_never.ipynb", ["from pathlib import Path\nPath(output_dir, 'never.txt').write_text('x')"])
    out = tmp_path / "out"
    code = main(["--profile", "smoke", "--output", str(out), "--figures", str(out / "f"), "--notebooks", str(nbs)])
    assert code == 1
    err = capsys.readouterr().err
    assert "02_bad.ipynb failed in cell" in err and "ValueError: broken on purpose" in err
    assert (out / "ok.txt").read_text() == "smoke"
    assert (out / "notebooks" / "01_ok.ipynb").is_file()
    assert not (out / "never.txt").exists()
    import json

    summary = json.loads((out / "study_summary.json").read_text())
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [("01_ok.ipynb", "ok"),
                                                                           ("02_bad.ipynb", "failed")]
    assert "broken on purpose" in summary["notebooks"][1]["error"]


def test_runner_requires_parameters_cell(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, nbs / "01_noparams.ipynb")
    assert main(["--output", str(tmp_path / "o"), "--notebooks", str(nbs)]) == 1
    assert "no cell tagged 'parameters'" in capsys.readouterr().err


def test_unknown_profile_is_rejected():
    with pytest.raises(SystemExit):
        main(["--profile", "nope"])


def test_overrides_reach_every_notebook_and_only_must_match(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    cell = ("import json\nfrom pathlib import Path\nfrom asymlib.config import get_profile\n"
            "p = get_profile(profile, **overrides)\n"
            "Path(output_dir, NAME + '.json').write_text(json.dumps([p.sr.stage2.iterations, train_missing]))")
    for name in ("01_a", "02_b"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'\noutput_dir = None\nfigures_dir = None\n"
                                              "overrides = {}\ntrain_missing = None", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(cell.replace("NAME", repr(name)))]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nbs / f"{name}.ipynb")
    out = tmp_path / "out"
    code = main(["--profile", "smoke", "--output", str(out), "--figures", str(out / "f"), "--notebooks", str(nbs),
                 "--set", "sr.stage2.iterations=7", "--no-train-missing"])
    assert code == 0, capsys.readouterr().err
    for name in ("01_a", "02_b"):
        assert (out / f"{name}.json").read_text() == "[7, false]"
    assert main(["--profile", "smoke", "--output", str(out), "--notebooks", str(nbs), "--only", "7"]) == 1
    assert "matches no notebook" in capsys.readouterr().err
    assert main(["--profile", "smoke", "--output", str(out), "--notebooks", str(nbs),
                 "--set", "sr.stage2.iterations=abc"]) == 1
    assert "SRTrainConfig.iterations" in capsys.readouterr().err


def test_paper_study_refuses_missing_evaluators_unless_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _write_nb(nbs / "02_sr.ipynb", ["from pathlib import Path\nPath(output_dir, 'ran.txt').write_text('x')"])
    out = tmp_path / "out"
    args = ["--profile", "paper", "--output", str(out), "--figures", str(out / "f"), "--notebooks", str(nbs)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "MANIQA" in err and "VQ-R1" in err and "sr.evaluators=" in err and "asymlib.check" in err
    assert not (out / "ran.txt").exists()
    assert main(args + ["--set", "sr.evaluators=[piqe]", "--no-train-missing"]) == 0
    assert (out / "ran.txt").read_text() == "x"


def test_check_names_every_missing_dataset_weight_and_evaluator(tmp_path, monkeypatch, capsys):
    from asymlib.check import main as check

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert check(["--profile", "paper", "--data", str(tmp_path / "data"), "--format", "json"]) == 1
    import json

    problems = json.loads(capsys.readouterr().out)
    names = {(p["kind"], p["name"].split(" ")[0]) for p in problems}
    for ds in ("kadid10k", "tid2013", "liu13", "ma17", "tqd", "koniq10k"):
        assert ("dataset", ds) in names
    assert {("dataset", "SR")} <= names and sum(p["name"].startswith("SR HR") for p in problems) == 2
    for bb in ("vgg16", "resnet50", "convnext_tiny", "clip_vit_b16", "swin_t", "dinov2_vitb14"):
        assert ("weights", bb) in names
    for ev in ("MANIQA", "LIQE", "DeQA", "VQ-R1"):
        assert ("evaluator", ev) in names
    assert all(p["remedy"] for p in problems)
    assert any(str(tmp_path / "data" / "kadid10k") == p["path"] for p in problems)
    # the smoke profile needs nothing from outside
    assert check(["--profile", "smoke"]) == 0


def test_real_notebooks_keep_the_study_overrides_their_shortcuts_leave_at_none(tmp_path):
    """``--set`` reaches each notebook's profile even for settings the notebook also has a shortcut parameter
    for (left at None); a shortcut that is given wins."""
    import re
    from functools import reduce

    from asymlib.config import get_profile
    from asymlib.study import list_notebooks

    smoke = get_profile("smoke")
    checked = 0
    for path in list_notebooks():
        cells = nbformat.read(path, as_version=4).cells
        params = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
        setup = next(c for c in cells if c.cell_type == "code" and "setup_notebook(" in c.source)
        overrides = {}
        for key in re.findall(r'"([a-z_0-9]+(?:\.[a-z_0-9]+)+)":', setup.source):
            old = reduce(getattr, key.split("."), smoke)
            if isinstance(old, int) and not isinstance(old, bool):
                overrides[key] = old + 1
            elif isinstance(old, tuple) and len(old) > 1:
                overrides[key] = list(old[:1])
        if not overrides:
            continue  # no shortcut parameters (notebook 05)
        ns: dict = {}
        exec(params.source, ns)
        ns.update(profile="smoke", output_dir=str(tmp_path / "out"), figures_dir=str(tmp_path / "figs"),
                  overrides=overrides)
        exec(setup.source.replace("ctx.show_banner()", ""), ns)
        got = ns["ctx"].profile
        for key, value in overrides.items():
            want = tuple(value) if isinstance(value, list) else value
            assert reduce(getattr, key.split("."), got) == want, (path.name, key)
            checked += 1
    assert checked >= 8


def test_library_bars_are_off_in_a_study_even_as_notebook_widgets(monkeypatch):
    import tqdm.auto as tqdm_auto
    from tqdm.notebook import tqdm_notebook

    from asymlib.progress import tqdm

    monkeypatch.setattr(tqdm_auto, "tqdm", tqdm_notebook)  # what tqdm.auto gives inside a Jupyter kernel
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert tqdm(range(3), desc="x").disable and list(tqdm(range(3))) == [0, 1, 2]
    assert tqdm_notebook(range(3), disable=False).disable is False  # tqdm's own notebook bar ignores the variable
    monkeypatch.delenv("TQDM_DISABLE")
    assert not tqdm(range(3), file=open(os.devnull, "w")).disable
