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
