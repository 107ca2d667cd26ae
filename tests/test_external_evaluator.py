"""DeQA-Score from a local remote-code model folder, in this process and in another environment's process."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from asymlib.rehearsal import write_standin_deqa
from asymlib.sr.evaluators import create_evaluator, evaluator_status
from asymlib.sr.external import ExternalWorkerError


@pytest.fixture
def deqa_folder(tmp_path, monkeypatch):
    folder = write_standin_deqa(tmp_path / "deqa")
    monkeypatch.setenv("ASYMLIB_DEQA_PATH", str(folder))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.delenv("ASYMLIB_DEQA_PYTHON", raising=False)
    return folder


def _images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 48, 64, generator=g)
    x[0] = 0.5  # flat: the lowest sharpness, the lowest stand-in score
    x[1] = torch.nn.functional.avg_pool2d(x[1:2], 5, 1, 2)[0]
    return x


def test_deqa_in_another_interpreter_scores_like_in_process(deqa_folder, monkeypatch):
    inproc = create_evaluator("deqa")
    expected = inproc(_images())
    assert expected.shape == (3,) and np.all((expected >= 1) & (expected <= 5))
    assert expected[0] < expected[1] < expected[2]
    monkeypatch.setenv("ASYMLIB_DEQA_PYTHON", sys.executable)
    assert evaluator_status("deqa").available
    ext = create_evaluator("deqa")
    assert "under " + sys.executable in ext.source
    np.testing.assert_allclose(ext(_images()), expected, rtol=1e-6)
    np.testing.assert_allclose(ext(_images()[:1]), expected[:1], rtol=1e-6)  # the worker serves many batches
    ext.worker.close()
    with pytest.raises(ExternalWorkerError, match="exited with status 0"):
        ext(_images())


def test_deqa_interpreter_that_is_not_there_is_reported(deqa_folder, monkeypatch, tmp_path):
    monkeypatch.setenv("ASYMLIB_DEQA_PYTHON", str(tmp_path / "envs" / "deqa" / "bin" / "python"))
    st = evaluator_status("deqa")
    assert not st.available and "ASYMLIB_DEQA_PYTHON=" in st.reason and "not an executable file" in st.reason


def test_worker_failure_names_the_interpreter_and_quotes_its_stderr(deqa_folder, monkeypatch):
    (deqa_folder / "modeling_standin.py").write_text("raise ImportError('deqa needs transformers 4.36.1')\n")
    monkeypatch.setenv("ASYMLIB_DEQA_PYTHON", sys.executable)
    with pytest.raises(Exception) as info:
        create_evaluator("deqa")
    text = str(info.value)
    assert sys.executable in text and "exited with status 1" in text and "deqa needs transformers 4.36.1" in text
