"""The study runner executes notebooks with papermill and names the failing notebook and cell."""
from __future__ import annotations

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
