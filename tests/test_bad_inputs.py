"""Bad input never passes silently: every case below raises one asymlib error that names its cause.

Metric calls (the input contract of :mod:`asymlib.inputcheck`), evaluators, images, configurations, dataset
files, checkpoints, run files, full disks and the study runner. No case returns a number.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import asymlib
from asymlib.atomic import atomic_torch_save, atomic_write_csv, atomic_write_json
from asymlib.errors import (AsymlibError, CheckpointError, ConfigError, DatasetError, DiskFullError, ImageReadError,
                            InputError, InputSizeError, RunFileError, UnknownNameError)
from asymlib.imageio import load_image
from asymlib.inputcheck import check_image_pair
from asymlib.iqa.datasets import create_fr_dataset
from asymlib.runs import Run, open_run, read_csv_file, read_json_file
from asymlib.torchfile import read_torch_file

from tests.test_datasets import _make_kadid

S = 64  # the VGG-16 metric's minimum side


@pytest.fixture(scope="module")
def metric() -> nn.Module:
    return asymlib.create_metric("dists", backbone="vgg16", weights="random")


def _img(b: int = 2, h: int = S, w: int = S, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _with(value: float, where: tuple[int, ...] = (0, 0, 3, 5)) -> torch.Tensor:
    x = _img()
    x[where] = value
    return x


# ------------------------------------------------------------------------------------------------ metric
# (case, distorted, reference, error type, message fragments)
METRIC_CASES = [
    ("numpy", lambda: _img().numpy(), _img, InputError, ["distorted", "numpy.ndarray", "expected a float tensor"]),
    ("list", lambda: _img().tolist(), _img, InputError, ["distorted", "builtins.list"]),
    ("uint8", lambda: (_img() * 255).to(torch.uint8), _img, InputError, ["torch.uint8", "divide 8-bit images by 255"]),
    ("int64", lambda: (_img() * 255).long(), _img, InputError, ["torch.int64", "floating point"]),
    ("bool", lambda: _img() > 0.5, _img, InputError, ["torch.bool"]),
    ("complex", lambda: _img().to(torch.complex64), _img, InputError, ["torch.complex64"]),
    ("single image 3-D", lambda: _img()[0], lambda: _img()[0], InputError, ["(3, 64, 64)", "x[None]"]),
    ("grayscale 1 channel", lambda: _img()[:, :1], lambda: _img()[:, :1], InputError, ["(2, 1, 64, 64)", "3 channels"]),
    ("RGBA 4 channels", lambda: torch.rand(2, 4, S, S), lambda: torch.rand(2, 4, S, S), InputError, ["(2, 4, 64, 64)"]),
    ("5-D video", lambda: torch.rand(1, 2, 3, S, S), lambda: torch.rand(1, 2, 3, S, S), InputError, ["(1, 2, 3, 64, 64)"]),
    ("empty batch", lambda: _img(0), lambda: _img(0), InputError, ["empty batch", "(0, 3, 64, 64)"]),
    ("too small", lambda: _img(1, 48, 80), lambda: _img(1, 48, 80), InputSizeError,
     ["48x80 is smaller than the 64x64"]),
    ("batch sizes differ", _img, lambda: _img(1), InputError, ["shapes differ", "(2, 3, 64, 64) vs (1, 3, 64, 64)"]),
    ("sides differ", _img, lambda: _img(2, S, S + 8), InputError, ["shapes differ", "(2, 3, 64, 72)"]),
    ("NaN distorted", lambda: _with(float("nan")), _img, InputError, ["distorted", "1 NaN", "non-finite"]),
    ("+Inf reference", _img, lambda: _with(float("inf")), InputError, ["reference", "1 Inf"]),
    ("-Inf distorted", lambda: _with(float("-inf")), _img, InputError, ["distorted", "1 Inf"]),
    ("scaled to [0, 255]", lambda: _img() * 255, _img, InputError, ["distorted", "scaled to [0, 255]"]),
    ("reference scaled to [0, 255]", _img, lambda: _img() * 255, InputError, ["reference", "divide by 255"]),
    ("scaled to [-1, 1]", lambda: _img() * 2 - 1, _img, InputError, ["distorted", "scaled to [-1, 1]", "(x + 1) / 2"]),
    ("far overshoot", lambda: _with(1.8), _img, InputError, ["values in [", "1.8]", "[-0.5, 1.5]"]),
    ("wrong device", lambda: _img().to("meta"), _img, InputError, ["distorted is on meta", "the metric on cpu"]),
]


@pytest.mark.parametrize("case, make_x, make_y, error, fragments", METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_metric_refuses_bad_input(metric, case, make_x, make_y, error, fragments):
    with pytest.raises(error) as info:
        metric(make_x(), make_y())
    assert isinstance(info.value, InputError) and isinstance(info.value, AsymlibError)
    for fragment in fragments:
        assert fragment in str(info.value), (case, str(info.value))


def test_metric_loss_and_pair_terms_apply_the_same_contract(metric):
    loss = asymlib.metrics.MetricLoss(metric)
    with pytest.raises(InputError, match=r"scaled to \[0, 255\]"):
        loss(_img() * 255, _img())
    with pytest.raises(InputError, match="NaN"):
        metric.pair_terms(_with(float("nan")), _img())


class _PlainL1(nn.Module):
    """A metric that does not check its inputs itself: MetricLoss must."""

    min_size = 16

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).abs().mean(dim=(1, 2, 3))


@pytest.mark.parametrize("x, fragment", [(torch.rand(2, 3, 32, 32) * 255, "[0, 255]"),
                                         (torch.rand(2, 3, 8, 8), "8x8 is smaller than the 16x16"),
                                         (np.zeros((2, 3, 32, 32), np.float32), "numpy.ndarray")])
def test_metric_loss_checks_a_metric_that_does_not(x, fragment):
    with pytest.raises(InputError) as info:
        asymlib.metrics.MetricLoss(_PlainL1())(x, torch.rand(*x.shape))
    assert fragment in str(info.value)


def test_contract_accepts_overshoot_float64_and_float16(metric):
    x, y = _img(seed=1), _img(seed=2)
    d = metric(x, y)
    # a generator's slight overshoot trains: finite loss, gradient reaches the input
    over = (x * 1.3 - 0.15).requires_grad_(True)
    loss = asymlib.metrics.MetricLoss(metric)(over, y)
    loss.backward()
    assert torch.isfinite(loss) and over.grad is not None and torch.isfinite(over.grad).all()
    d64 = metric(x.double(), y.double())
    assert d64.dtype == torch.float64 and torch.allclose(d64, d.double(), atol=1e-6)
    d16 = metric(x.half(), y.half())
    assert d16.dtype == torch.float16 and torch.allclose(d16.float(), d, atol=5e-3)


def test_generator_loss_checks_finiteness_of_the_output_and_the_whole_contract_of_the_target(metric):
    from asymlib.sr.losses import generator_loss

    x, y = _img(seed=1), _img(seed=2)
    diverged = (x * 40 - 20).requires_grad_(True)  # a diverging generator: far outside [0, 1], still trained
    total, _ = generator_loss(diverged, y, lambda_rec=0.0, lambda_per=1.0, lambda_adv=0.0, metric=metric)
    total.backward()
    assert torch.isfinite(total) and diverged.grad is not None
    with pytest.raises(InputError, match=r"reference has values .*scaled to \[0, 255\]"):
        generator_loss(x, y * 255, lambda_rec=0.0, lambda_per=1.0, lambda_adv=0.0, metric=metric)
    with pytest.raises(InputError, match="distorted holds non-finite values"):
        generator_loss(_with(float("nan")), y, lambda_rec=0.0, lambda_per=1.0, lambda_adv=0.0, metric=metric)
    with pytest.raises(InputError, match=r"distorted has values"):  # outside the loss, the range is checked again
        metric(x * 40 - 20, y)


def test_contract_costs_one_host_sync(monkeypatch):
    calls = []
    real = torch.Tensor.tolist

    def counting(self):
        calls.append(tuple(self.shape))
        return real(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    check_image_pair(_img(), _img())
    assert calls == [(4,)]  # the four extremes of both batches, fetched once


@pytest.fixture(scope="module")
def psnr():
    from asymlib.sr.evaluators import create_evaluator

    return create_evaluator("psnr")


@pytest.mark.parametrize("images, fragment", [
    (lambda: _img().numpy(), "numpy.ndarray"),
    (lambda: (_img() * 255).to(torch.uint8), "torch.uint8"),
    (lambda: _img() * 255, "scaled to [0, 255]"),
    (lambda: _with(float("nan")), "NaN"),
    (lambda: _img()[:, :2], "(2, 2, 64, 64)"),
])
def test_evaluators_refuse_bad_input(psnr, images, fragment):
    with pytest.raises(InputError) as info:
        psnr(images(), _img())
    assert "evaluator: images" in str(info.value) and fragment in str(info.value)


def test_evaluator_refs_are_checked_and_named(psnr):
    with pytest.raises(InputError, match="evaluator: refs has values"):
        psnr(_img(), _img() * 2 - 1)
    with pytest.raises(InputError, match="images .* and refs .* differ"):
        psnr(_img(), _img(1))


# ------------------------------------------------------------------------------------------------ images
def _write_png(path: Path, size: int = 16) -> Path:
    Image.fromarray(np.full((size, size, 3), 100, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("case", ["missing", "text", "empty", "truncated", "folder"])
def test_unreadable_image_is_named(tmp_path, case):
    path = tmp_path / f"{case}.png"
    if case == "text":
        path.write_text("not an image")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        _write_png(path, 64)
        path.write_bytes(path.read_bytes()[:60])
    elif case == "folder":
        path.mkdir()
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_decompression_bomb_names_file_pixels_limit_and_remedy(tmp_path, monkeypatch):
    path = _write_png(tmp_path / "huge.png", 16)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 256 pixels > 2 x 100: Pillow refuses
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    msg = str(info.value)
    assert str(path) in msg and "256 pixels" in msg and "limit of 200" in msg
    assert "PIL.Image.MAX_IMAGE_PIXELS" in msg


def test_strict_mode_refuses_grayscale(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    with pytest.raises(ImageReadError, match=r"gray\.png: image mode is 'L'"):
        load_image(path, strict_mode=True)


def test_16bit_png_keeps_its_precision(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), rgb[..., ::-1])
    got = load_image(tmp_path / "rgb16.png")
    assert got.dtype == torch.float32 and got.shape == (3, 12, 10)
    want = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float64) / 65535)
    assert (got.double() - want).abs().max() < 1e-6  # 8 bits would be off by up to 1/510
    gray = rng.integers(0, 65536, (12, 10), dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    got = load_image(tmp_path / "gray16.png")
    assert (got.double() - torch.from_numpy(gray / 65535.0)[None]).abs().max() < 1e-6


def test_dataset_validate_lists_a_bomb_and_a_corrupt_file(tmp_path, monkeypatch):
    root = _make_kadid(tmp_path)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "images" / "I01_01_02.png")  # 1600 pixels
    (root / "images" / "I02_01_01.png").write_bytes(b"\x89PNG\r\n\x1a\n junk")
    ds = create_fr_dataset("kadid10k", root)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # the 6x8 images pass, the 40x40 one is a "bomb"
    with pytest.raises(DatasetError, match="2 problem") as info:
        ds.validate()
    msg = str(info.value)
    assert str(root / "images" / "I01_01_02.png") in msg and "decompression bomb" in msg
    assert str(root / "images" / "I02_01_01.png") in msg


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("field, value, fragment", [
    ("iterations", "3", "got '3'"),
    ("iterations", 3.5, "got 3.5"),
    ("batch_size", True, "got True"),
    ("lr", float("nan"), "finite"),
    ("lambda_per", float("-inf"), "finite"),
])
def test_config_refuses_bad_values(field, value, fragment):
    from asymlib.sr.config import SRTrainConfig

    with pytest.raises(ConfigError) as info:
        SRTrainConfig(**{field: value})
    assert f"SRTrainConfig.{field}" in str(info.value) and fragment in str(info.value)


def test_profile_refuses_unknown_fields_and_profiles():
    from asymlib.config import get_profile

    with pytest.raises(ConfigError, match="itertions"):
        get_profile("smoke", **{"sr.stage2.itertions": 3})
    with pytest.raises(UnknownNameError, match="'fast'"):
        get_profile("fast")


# ------------------------------------------------------------------------------------------------ dataset files
@pytest.mark.parametrize("case, text, fragment", [
    ("missing column", "dist_img,ref_img,var\nI01_01_01.png,I01.png,0.5\n", r"missing column(s) ['dmos']"),
    ("non-numeric score", "dist_img,ref_img,dmos\nI01_01_01.png,I01.png,good\n", "line 2: column 'dmos' has value 'good'"),
    ("no rows", "dist_img,ref_img,dmos\n", "no data rows"),
    ("conflicting duplicates", "dist_img,ref_img,dmos\nI01_01_01.png,I01.png,4.5\nI01_01_01.png,I01.png,3.0\n",
     "lines 2 and 3"),
    ("empty file", "", "dmos.csv"),
])
def test_bad_annotation_file_is_named(tmp_path, case, text, fragment):
    root = _make_kadid(tmp_path)
    (root / "dmos.csv").write_text(text)
    with pytest.raises(DatasetError) as info:
        create_fr_dataset("kadid10k", root)
    assert str(root / "dmos.csv") in str(info.value) and fragment in str(info.value), str(info.value)


def test_missing_dataset_folder_and_annotation(tmp_path):
    with pytest.raises(DatasetError, match="dataset root folder not found"):
        create_fr_dataset("kadid10k", tmp_path / "nope")
    root = _make_kadid(tmp_path / "k")
    (root / "dmos.csv").unlink()
    with pytest.raises(DatasetError, match=r"annotation file not found.*dmos\.csv"):
        create_fr_dataset("kadid10k", root)


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("content, fragment", [(None, "not found"), (b"", "corrupt or unreadable"),
                                               (b"PK\x03\x04 truncated zip", "corrupt or unreadable")])
def test_sr_checkpoint_errors_name_the_file(tmp_path, content, fragment):
    from asymlib.sr.trainer import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_checkpoint_readers_share_one_helper(tmp_path):
    from asymlib.backbones import load_checkpoint_state_dict
    from asymlib.discriminators.factory import read_backbone_export

    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    with pytest.raises(CheckpointError, match=r"list\.pt holds a list"):
        load_checkpoint_state_dict(listing)
    with pytest.raises(CheckpointError, match=r"list\.pt holds a list"):
        read_torch_file(listing, expect_dict=True)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors is corrupt"):
        load_checkpoint_state_dict(junk)
    pickled = tmp_path / "pickled.pt"
    torch.save({"fn": os.getcwd}, pickled)  # weights_only refuses arbitrary callables
    with pytest.raises(CheckpointError, match=r"backbone export .*pickled\.pt is corrupt or unreadable"):
        read_backbone_export(pickled)


def test_rescaling_file_errors_are_run_file_errors(tmp_path):
    from asymlib.sr.evaluators import Rescaling

    bad = tmp_path / "rescaling.json"
    bad.write_text('{"eta": ')
    with pytest.raises(RunFileError, match=r"rescaling\.json: cannot read as JSON"):
        Rescaling.load(bad)
    bad.write_text('{"colour": 1}')
    with pytest.raises(RunFileError, match=r"rescaling\.json: not an Appendix D rescaling fit"):
        Rescaling.load(bad)


# ------------------------------------------------------------------------------------------------ run files
def test_damaged_run_files_are_named(tmp_path):
    run = open_run(tmp_path, "fake", "r", {"x": 1}, tensorboard=False)
    (run.path / "status.json").write_text("")
    with pytest.raises(RunFileError, match=r"status\.json: cannot read as JSON"):
        Run(run.path, {"x": 1}).finished
    (run.path / "status.json").write_text("[1, 2]")
    with pytest.raises(RunFileError, match=r"status\.json: expected a JSON object, got list"):
        read_json_file(run.path / "status.json")
    (run.path / "results.csv").write_bytes(b"")
    with pytest.raises(RunFileError, match=r"results\.csv"):
        run.read_results()
    with pytest.raises(RunFileError, match=r"missing\.csv: cannot read as CSV"):
        read_csv_file(run.path / "missing.csv")
    (run.path / "log.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl: line 2"):
        run.read_log()


# ------------------------------------------------------------------------------------------------ full disk
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _assert_nothing_half_written(folder: Path, target: Path, previous: str | None) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    if previous is None:
        assert not target.exists()
    else:
        assert target.read_text() == previous


@pytest.mark.parametrize("writer", ["json", "csv", "torch-enospc"])
def test_enospc_raises_disk_full_naming_the_target(tmp_path, monkeypatch, writer):
    target = tmp_path / f"out.{writer}"
    target.write_text("previous content")
    if writer == "json":
        real = Path.write_text

        def partial(self, *a, **k):
            real(self, "{half")
            _no_space()

        monkeypatch.setattr(Path, "write_text", partial)
        call = lambda: atomic_write_json(target, {"a": 1})  # noqa: E731
    elif writer == "csv":
        monkeypatch.setattr(pd.DataFrame, "to_csv", _no_space)
        call = lambda: atomic_write_csv(pd.DataFrame({"a": [1]}), target)  # noqa: E731
    else:
        monkeypatch.setattr(torch, "save", _no_space)
        call = lambda: atomic_torch_save({"a": 1}, target)  # noqa: E731
    with pytest.raises(DiskFullError) as info:
        call()
    assert "no space left on device" in str(info.value) and str(target) in str(info.value)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    monkeypatch.undo()
    _assert_nothing_half_written(tmp_path, target, "previous content")


@pytest.mark.parametrize("message", [
    "[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file data/0: file write failed",
    "[enforce fail at inline_container.cc:764] . unexpected pos 4160 vs 4054",
])
def test_torch_save_write_failure_is_disk_full(tmp_path, monkeypatch, message):
    def failing_save(obj, f, *a, **k):
        Path(f).write_bytes(b"PK partial")
        raise RuntimeError(message)

    monkeypatch.setattr(torch, "save", failing_save)
    run = open_run(tmp_path, "fake", "r", {"x": 1}, tensorboard=False)
    with pytest.raises(DiskFullError) as info:
        run.save_checkpoint({"step": 1})
    assert "no space left on device" in str(info.value) and str(run.path / "checkpoint.pt") in str(info.value)
    _assert_nothing_half_written(run.path, run.path / "checkpoint.pt", None)


def test_other_write_errors_are_not_called_disk_full(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(pd.DataFrame, "to_csv", denied)
    with pytest.raises(OSError) as info:
        atomic_write_csv(pd.DataFrame({"a": [1]}), tmp_path / "x.csv")
    assert not isinstance(info.value, DiskFullError) and info.value.errno == errno.EACCES
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("some other bug")))
    with pytest.raises(RuntimeError, match="some other bug") as info2:
        atomic_torch_save({}, tmp_path / "x.pt")
    assert not isinstance(info2.value, DiskFullError)
    assert [p.name for p in tmp_path.iterdir()] == []


# ------------------------------------------------------------------------------------------------ SR training
class _NaNAfter(nn.Module):
    """Generator wrapper whose training output turns NaN after ``after`` calls."""

    def __init__(self, inner: nn.Module, after: int):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                out = out * float("nan")
        return out


class _CheckedL1(_PlainL1):
    validates_inputs = True

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_image_pair(x, y, what="checked L1")
        return super().forward(x, y)


def test_nan_generator_output_refused_by_the_metric_is_a_collapse(tmp_path):
    from asymlib.sr.trainer import train_sr

    from tests._tiny_sr import tiny_cfg, tiny_images, tiny_model

    run = open_run(tmp_path, "sr", "nan-out", {"t": "nan-out"}, tensorboard=False)
    res = train_sr(run, tiny_cfg(lambda_per=1.0, checkpoint_every=100, iterations=3), "nan-out",
                   generator=_NaNAfter(tiny_model(), 1), train_data=tiny_images(), metric=_CheckedL1(),
                   device="cpu", progress=False)
    assert res.status == "collapsed" and res.step == 1
    assert "non-finite" in res.reason and "distorted holds non-finite values" in res.reason


# ------------------------------------------------------------------------------------------------ runner
def _notebooks(tmp_path: Path) -> Path:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'\noutput_dir = None\nfigures_dir = None",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise RuntimeError('must not run')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nbs / "01_a.ipynb")
    return nbs


@pytest.mark.parametrize("extra, fragment", [
    (["--only", "7"], "matches no notebook"),
    (["--set", "sr.stage2.iterations=abc"], "SRTrainConfig.iterations"),
    (["--set", "sr.stage2.itertions=3"], "itertions"),
    (["--config", "MISSING"], "missing.yaml"),
    (["--config", "LIST"], "must hold a mapping"),
])
def test_runner_exits_non_zero_naming_the_cause(tmp_path, capsys, extra, fragment):
    from asymlib.study import main

    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    extra = [str(tmp_path / "missing.yaml") if e == "MISSING" else str(tmp_path / "list.yaml") if e == "LIST" else e
             for e in extra]
    out = tmp_path / "out"
    code = main(["--profile", "smoke", "--output", str(out), "--figures", str(out / "f"),
                 "--notebooks", str(_notebooks(tmp_path))] + extra)
    assert code == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and fragment in err and "must not run" not in err


def test_log_append_on_a_full_disk_names_the_log(tmp_path, monkeypatch):
    import builtins

    run = open_run(tmp_path, "fake", "r", {"x": 1}, tensorboard=False)
    run.start({})
    run.log(1, loss=0.5)
    real_open = builtins.open

    class _Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[:5])  # a torn line, then the disk is full
            _no_space()

    def full_open(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        return _Full(fh) if "a" in mode and str(file).endswith("log.jsonl") else fh

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(DiskFullError) as info:
        run.log(2, loss=0.25)
    assert "no space left on device" in str(info.value) and str(run.path / "log.jsonl") in str(info.value)
    monkeypatch.undo()
    again = open_run(tmp_path, "fake", "r", {"x": 1}, tensorboard=False)
    again.log(2, loss=0.25)  # the torn tail is dropped before appending
    assert again.read_log()["step"].tolist() == [1, 2]
