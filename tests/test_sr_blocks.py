"""SR building blocks: SwinIR presets, MATLAB bicubic resize, paired dataset, RaGAN losses, EMA."""
from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from asymlib.errors import (
    ConfigError,
    DatasetError,
    ImageReadError,
    InputSizeError,
    UnknownNameError,
)
from asymlib.sr.data import PairedSRDataset
from asymlib.sr.ema import ModelEMA
from asymlib.sr.losses import (
    generator_loss,
    get_adversarial_loss,
    relativistic_discriminator_loss,
    relativistic_discriminator_loss_fake,
    relativistic_discriminator_loss_real,
    relativistic_generator_loss,
)
from asymlib.sr.models import (
    count_parameters,
    create_sr_model,
    list_sr_models,
    list_sr_presets,
)
from asymlib.sr.resize import imresize

torch.set_num_threads(2)


# --------------------------------------------------------------------------- models
def test_classical_swinir_parameter_count_and_shape():
    model = create_sr_model("swinir", scale=4, preset="classical")
    assert count_parameters(model) == 11_900_199
    with torch.no_grad():
        out = model(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 32, 32)


def test_small_swinir_any_size_and_gradients():
    model = create_sr_model(preset="small")
    assert count_parameters(model) == 988_959
    x = torch.rand(2, 3, 12, 9)  # not multiples of the window: padded inside, cropped back
    out = model(x)
    assert out.shape == (2, 3, 48, 36)
    out.mean().backward()
    assert model.conv_first.weight.grad is not None


def test_sr_model_errors_and_overrides():
    assert list_sr_models() == ["swinir"]
    assert {"classical", "small"} <= set(list_sr_presets())
    with pytest.raises(UnknownNameError):
        create_sr_model("edsr")
    with pytest.raises(UnknownNameError):
        create_sr_model(preset="huge")
    with pytest.raises(ConfigError):
        create_sr_model(preset="small", scale=5)
    with pytest.raises(ConfigError):
        create_sr_model(preset="small", no_such_option=1)
    model = create_sr_model(preset="small", scale=2, depths=[2, 2], num_heads=[6, 6])
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    with pytest.raises(InputSizeError):
        model(torch.rand(1, 3, 4, 8))  # 4 rows cannot be reflect-padded to 8


# --------------------------------------------------------------------------- resize
def _matlab_weights_1d(in_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Direct transcription of MATLAB imresize's ``contributions`` (bicubic) as a dense matrix."""

    def cubic(x):
        a = np.abs(x)
        return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))

    out_len = math.ceil(in_len * scale)
    width = 4.0
    stretch = scale < 1 and antialias

    def h(x):
        return scale * cubic(scale * x) if stretch else cubic(x)

    if stretch:
        width = width / scale
    mat = np.zeros((out_len, in_len))
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    for j in range(1, out_len + 1):
        u = j / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        p = math.ceil(width) + 2
        ind = left + np.arange(p)
        w = h(u - ind)
        w = w / w.sum()
        ind = aux[np.mod(ind - 1, len(aux))]
        for i, wi in zip(ind, w, strict=True):
            mat[j - 1, i - 1] += wi
    return mat


@pytest.mark.parametrize("in_len,scale", [(16, 0.25), (13, 0.5), (7, 2.0), (9, 1 / 3), (3, 0.25)])
def test_imresize_matches_matlab_formula_1d(in_len, scale):
    rng = np.random.default_rng(0)
    sig = rng.random(in_len)
    expected = _matlab_weights_1d(in_len, scale) @ sig
    x = torch.from_numpy(np.tile(sig, (2, 1)))[None]  # (1, 2, in_len): resize along W only
    got = imresize(x, (1.0, scale))[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_imresize_constant_ramp_shape_and_hand_values():
    const = torch.full((2, 3, 20, 17), 0.3)
    y = imresize(const, 0.25)
    assert y.shape == (2, 3, 5, 5)  # ceil(20/4), ceil(17/4)
    assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-6)
    assert imresize(torch.rand(3, 10, 10), 0.3).shape == (3, 3, 3)
    # a linear ramp downscaled by 4 gives the mean of each 4-pixel block away from the borders
    ramp = torch.arange(64, dtype=torch.float64).expand(1, 8, 64)
    row = imresize(ramp, 0.25)[0, 0]
    expected = 4 * torch.arange(16, dtype=torch.float64) + 1.5
    assert torch.allclose(row[2:-2], expected[2:-2], atol=1e-10)
    # hand-checked: x2 upscaling of [0, 1]. Output 1 sits at u = 0.75; taps at 1-based positions
    # -1, 0, 1, 2 (distances 1.75, 0.75, -0.25, -1.25) read mirrored pixels 1, 0, 0, 1 with cubic
    # weights -3/128, 29/128, 111/128, -9/128, so y1 = -12/128; the rest follows by symmetry.
    two = torch.tensor([[[0.0, 1.0]]], dtype=torch.float64)
    expected_two = torch.tensor([-12, 26, 102, 140], dtype=torch.float64) / 128
    assert torch.allclose(imresize(two, (1.0, 2.0))[0, 0], expected_two, atol=1e-12)
    with pytest.raises(InputSizeError):
        imresize(torch.rand(10, 10), 0.5)


# --------------------------------------------------------------------------- dataset
def _write(path, arr, mode=None):
    Image.fromarray(arr, mode=mode).save(path)


def test_paired_dataset_from_memory_is_deterministic():
    g = torch.Generator().manual_seed(0)
    corpus = {"a": torch.rand(3, 40, 50, generator=g), "b": torch.rand(3, 36, 36, generator=g)}
    ds = PairedSRDataset(corpus, hr_crop=32, scale=4, train=True, seed=3, repeats=3)
    assert len(ds) == 6
    item = ds[1]
    assert item["hr"].shape == (3, 32, 32) and item["lr"].shape == (3, 8, 8) and item["name"] == "b"
    assert item["lr"].min() >= 0 and item["lr"].max() <= 1
    assert torch.equal((item["lr"] * 255).round(), item["lr"] * 255) or torch.allclose(
        (item["lr"] * 255).round(), item["lr"] * 255, atol=1e-4
    )
    again = PairedSRDataset(corpus, hr_crop=32, scale=4, train=True, seed=3, repeats=3)[1]
    assert torch.equal(item["hr"], again["hr"]) and torch.equal(item["lr"], again["lr"])
    ds.set_epoch(1)
    assert any(not torch.equal(ds[i]["hr"], PairedSRDataset(corpus, 32, 4, True, 3, 3)[i]["hr"]) for i in range(6))
    val = PairedSRDataset(corpus, hr_crop=32, scale=4, train=False, quantize_lr=False)
    v = val[0]
    assert torch.equal(v["hr"], corpus["a"][:, 4:36, 9:41])
    assert torch.allclose(v["lr"], imresize(v["hr"], 0.25))


def test_paired_dataset_folder_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good"
    good.mkdir()
    _write(good / "0001.png", rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    ds = PairedSRDataset(good, hr_crop=16, scale=4)
    assert ds[0]["lr"].shape == (3, 4, 4) and ds[0]["name"] == "0001"

    with pytest.raises(ConfigError):
        PairedSRDataset(good, hr_crop=18, scale=4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="empty"):
        PairedSRDataset(empty, hr_crop=16)
    with pytest.raises(DatasetError, match="0001.png.*30x24"):
        PairedSRDataset(good, hr_crop=28, scale=4)
    for name, arr, mode in [
        ("gray", rng.integers(0, 256, (24, 24), dtype=np.uint8), "L"),
        ("rgba", rng.integers(0, 256, (24, 24, 4), dtype=np.uint8), "RGBA"),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        _write(folder / f"{name}.png", arr, mode)
        with pytest.raises(ImageReadError, match=f"{name}.png"):
            PairedSRDataset(folder, hr_crop=16)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png"):
        PairedSRDataset(broken, hr_crop=16)
    with pytest.raises(DatasetError, match="'x'"):
        PairedSRDataset({"x": torch.rand(3, 8, 8)}, hr_crop=16)


# --------------------------------------------------------------------------- losses
def _eq_d(a, b):
    """Eq. 6 with the relativistic mean taken over the batch (per position for maps)."""
    return torch.sigmoid(a - b.mean(dim=0, keepdim=True))


def _basicsr_losses(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BasicSR's ESRGAN formulas (../shared/README.md), BCE on logits averaged over every element and
    ``mean`` = ``torch.mean`` over batch and positions: generator
    ``0.5 * [BCE(D(r) - mean D(f), 0) + BCE(D(f) - mean D(r), 1)]``, discriminator
    ``0.5 * BCE(D(r) - mean D(f).detach, 1) + 0.5 * BCE(D(f).detach - mean D(r), 0)``."""
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones_like(real), torch.zeros_like(real)
    gen = 0.5 * (bce(real - torch.mean(fake), zeros) + bce(fake - torch.mean(real), ones))
    f = fake.detach()
    disc = 0.5 * bce(real - torch.mean(f), ones) + 0.5 * bce(f - torch.mean(real.detach()), zeros)
    return gen, disc


@pytest.mark.parametrize("shape", [(6, 1), (4, 1, 3, 5), (2, 1, 16, 16)])
def test_default_relativistic_losses_are_basicsr(shape):
    """The default relativistic mean is BasicSR's mean over all elements (batch and patch positions)."""
    from asymlib.sr.losses import DEFAULT_MEAN_OVER, relativistic_mean

    assert DEFAULT_MEAN_OVER == "all"
    g = torch.Generator().manual_seed(7)
    r = torch.randn(shape, generator=g) * 3
    f = torch.randn(shape, generator=g) * 3 + 1
    gen_ref, disc_ref = _basicsr_losses(r, f)
    assert relativistic_generator_loss(r, f).item() == pytest.approx(gen_ref.item(), abs=1e-6)
    assert relativistic_discriminator_loss(r, f).item() == pytest.approx(disc_ref.item(), abs=1e-6)
    split = relativistic_discriminator_loss_real(r, f) + relativistic_discriminator_loss_fake(f, r)
    assert split.item() == pytest.approx(disc_ref.item(), abs=1e-6)
    gen_pos = relativistic_generator_loss(r, f, mean_over="batch")
    disc_pos = relativistic_discriminator_loss(r, f, mean_over="batch")
    if len(shape) == 2:  # one logit per image: both means are the same mini-batch mean, bit for bit
        assert torch.equal(relativistic_mean(r), relativistic_mean(r, "batch"))
        assert torch.equal(gen_pos, relativistic_generator_loss(r, f))
        assert torch.equal(disc_pos, relativistic_discriminator_loss(r, f))
    else:  # patch logits: the per-position option is a different loss
        assert relativistic_mean(r).shape == () and relativistic_mean(r, "batch").shape == (1, *shape[1:])
        assert abs(gen_pos.item() - gen_ref.item()) > 1e-3 and abs(disc_pos.item() - disc_ref.item()) > 1e-3
    with pytest.raises(ConfigError, match="mean_over"):
        relativistic_mean(r, "positions")


@pytest.mark.parametrize("shape", [(6, 1), (4, 1, 3, 5)])
def test_relativistic_losses_match_equations(shape):
    g = torch.Generator().manual_seed(1)
    r = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    f = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    # "batch": Eq. 4-6 with each map position its own discriminator (per-position mini-batch mean)
    eq4 = -torch.log(1 - _eq_d(r, f)).mean() - torch.log(_eq_d(f, r)).mean()  # generator
    eq5 = -torch.log(_eq_d(r, f)).mean() - torch.log(1 - _eq_d(f, r)).mean()  # discriminator
    assert torch.allclose(relativistic_generator_loss(r, f, mean_over="batch"), 0.5 * eq4, atol=1e-6)
    assert torch.allclose(relativistic_discriminator_loss(r, f, mean_over="batch"), 0.5 * eq5, atol=1e-6)
    # "all" (default): one scalar mean over batch and map (BasicSR's torch.mean)
    def d_all(a, b):
        return torch.sigmoid(a - b.mean())

    eq4_all = -torch.log(1 - d_all(r, f)).mean() - torch.log(d_all(f, r)).mean()
    eq5_all = -torch.log(d_all(r, f)).mean() - torch.log(1 - d_all(f, r)).mean()
    assert torch.allclose(relativistic_generator_loss(r, f), 0.5 * eq4_all, atol=1e-6)
    assert torch.allclose(relativistic_discriminator_loss(r, f), 0.5 * eq5_all, atol=1e-6)
    assert torch.allclose(relativistic_discriminator_loss(r, f, mean_over="all"), 0.5 * eq5_all, atol=1e-6)
    gen, disc = get_adversarial_loss("relativistic_average")
    assert gen is relativistic_generator_loss and disc is relativistic_discriminator_loss


def test_trainer_discriminator_step_and_generator_loss_use_the_configured_mean():
    """``discriminator_backward`` (two passes) and ``generator_loss`` on a patch discriminator: BasicSR's values by
    default, the per-position ones with ``mean_over="batch"``."""
    from asymlib.sr.trainer import discriminator_backward

    torch.manual_seed(0)
    d = nn.Conv2d(3, 1, 3, padding=1)
    hr, sr = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    for mean_over in ("all", "batch"):
        d.zero_grad()
        loss, real_logits, fake_logits = discriminator_backward(d, hr, sr, contextlib.nullcontext,
                                                                **({} if mean_over == "all" else
                                                                   {"mean_over": mean_over}))
        assert real_logits.shape == fake_logits.shape == (3, 1, 8, 8)
        expected = relativistic_discriminator_loss(d(hr), d(sr), mean_over=mean_over)
        assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
        if mean_over == "all":
            assert loss.item() == pytest.approx(_basicsr_losses(d(hr), d(sr))[1].item(), abs=1e-6)
        _, terms = generator_loss(sr, hr, lambda_rec=0.0, lambda_per=0.0, lambda_adv=1.0, discriminator=d,
                                  **({} if mean_over == "all" else {"mean_over": mean_over}))
        expected_g = relativistic_generator_loss(d(hr).detach(), d(sr), mean_over=mean_over)
        assert terms["l_g_adv"].item() == pytest.approx(expected_g.item(), abs=1e-6)
        if mean_over == "all":
            assert terms["l_g_adv"].item() == pytest.approx(_basicsr_losses(d(hr), d(sr))[0].item(), abs=1e-6)


def test_relativistic_gradients_and_split_form():
    g = torch.Generator().manual_seed(2)
    r0, f0 = torch.randn(8, 1, generator=g), torch.randn(8, 1, generator=g)
    # discriminator: push real logits up, fake logits down
    r, f = r0.clone().requires_grad_(), f0.clone().requires_grad_()
    relativistic_discriminator_loss(r, f).backward()
    assert (r.grad < 0).all() and (f.grad > 0).all()
    # the split form (two backward passes) gives the same gradients
    r2, f2 = r0.clone().requires_grad_(), f0.clone().requires_grad_()
    relativistic_discriminator_loss_real(r2, f2).backward()
    assert f2.grad is None
    relativistic_discriminator_loss_fake(f2, r2).backward()
    assert torch.allclose(r.grad, r2.grad) and torch.allclose(f.grad, f2.grad)
    # generator: raise the fake logits overall
    f3 = f0.clone().requires_grad_()
    relativistic_generator_loss(r0, f3).backward()
    assert f3.grad.sum() < 0
    with pytest.raises(InputSizeError):
        relativistic_generator_loss(torch.zeros(2, 1), torch.zeros(2, 1, 2, 2))


class _Counting(nn.Module):
    """A stand-in metric (``(B,)`` mean absolute difference) or discriminator (1x1 conv logits) that counts calls."""

    def __init__(self, disc: bool = False) -> None:
        super().__init__()
        self.calls = 0
        self.conv = nn.Conv2d(3, 1, 1) if disc else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) if self.conv is not None else (x - y).abs().flatten(1).mean(1)


def test_generator_loss_is_eq1_and_skips_zero_terms():
    g = torch.Generator().manual_seed(3)
    hr = torch.rand(2, 3, 8, 8, generator=g)
    sr = torch.rand(2, 3, 8, 8, generator=g).requires_grad_()
    metric, disc = _Counting(), _Counting(disc=True)
    total, terms = generator_loss(sr, hr, lambda_rec=0.5, lambda_per=2.0, lambda_adv=0.1, metric=metric,
                                  discriminator=disc)
    expected = (0.5 * torch.nn.functional.l1_loss(sr, hr) + 2.0 * metric(sr, hr).mean()
                + 0.1 * relativistic_generator_loss(disc(hr).detach(), disc(sr)))
    assert set(terms) == {"l_rec", "l_per", "l_g_adv", "l_total"} and terms["l_total"] is total
    assert torch.allclose(total, expected) and total.requires_grad
    metric.calls = disc.calls = 0
    total, terms = generator_loss(sr, hr, lambda_rec=1.0, lambda_per=0.0, lambda_adv=0.0, metric=metric,
                                  discriminator=disc)
    assert set(terms) == {"l_rec", "l_total"} and metric.calls == disc.calls == 0
    assert torch.equal(total, torch.nn.functional.l1_loss(sr, hr))
    with pytest.raises(ConfigError, match="no perceptual metric"):
        generator_loss(sr, hr, lambda_rec=0.0, lambda_per=1.0, lambda_adv=0.0)
    with pytest.raises(ConfigError, match="no discriminator"):
        generator_loss(sr, hr, lambda_rec=0.0, lambda_per=0.0, lambda_adv=1.0)


# --------------------------------------------------------------------------- EMA
def test_model_ema_closed_form_and_state_roundtrip():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    decay = 0.9
    ema = ModelEMA(model, decay=decay)
    w0 = model[0].weight.detach().clone()
    history = []
    for step in range(5):
        with torch.no_grad():
            model[0].weight.add_(step + 1.0)
        model.train()
        model(torch.randn(4, 3))  # moves BatchNorm running statistics
        history.append(model[0].weight.detach().clone())
        ema.update(model)
    n = len(history)
    expected = decay**n * w0 + sum((1 - decay) * decay ** (n - k) * w for k, w in enumerate(history, 1))
    assert torch.allclose(ema.module[0].weight, expected, atol=1e-5)
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked  # integer buffer copied
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training

    other = ModelEMA(model, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == decay and other.updates == 5
    assert torch.equal(other.module[0].weight, ema.module[0].weight)
    with pytest.raises(ConfigError):
        ModelEMA(model, decay=1.0)


def test_memory_mapped_hr_store_gives_identical_crops(tmp_path):
    """A decoded store of an HR folder serves bit-identical crops, and is ignored once the folder changes."""
    import pickle
    import warnings

    from asymlib.imageio import save_image
    from asymlib.sr.data import PairedSRDataset
    from asymlib.sr.store import main as store_main
    from asymlib.sr.store import prepare_hr_store, store_dir

    folder = tmp_path / "DIV2K_train_HR"
    g = torch.Generator().manual_seed(0)
    for i, (h, w) in enumerate([(70, 90), (96, 64), (64, 80)]):
        save_image(torch.rand(3, h, w, generator=g), folder / f"{i:04d}.png")
    decoded = PairedSRDataset(folder, hr_crop=32, scale=4, train=True, seed=5, repeats=4)
    assert store_main([str(folder)]) == 0
    store = store_dir(folder)
    assert sorted(p.name for p in store.glob("*.npy")) == ["0000.npy", "0001.npy", "0002.npy"]
    mapped = PairedSRDataset(folder, hr_crop=32, scale=4, train=True, seed=5, repeats=4)
    assert "memory-mapped store" in repr(mapped) and "memory-mapped" not in repr(decoded)
    for i in range(len(decoded)):
        a, b = decoded[i], mapped[i]
        assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"]) and a["name"] == b["name"]
    clone = pickle.loads(pickle.dumps(mapped))  # what a DataLoader worker receives: paths, not the arrays
    assert torch.equal(clone[3]["hr"], decoded[3]["hr"])
    mtimes = {p.name: p.stat().st_mtime_ns for p in store.glob("*.npy")}
    prepare_hr_store(folder, log=None)  # up to date: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("*.npy")} == mtimes
    save_image(torch.rand(3, 64, 64, generator=g), folder / "0003.png")  # the folder changed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stale = PairedSRDataset(folder, hr_crop=32, scale=4)
    assert "memory-mapped" not in repr(stale) and any("python -m asymlib.sr.store" in str(w.message) for w in caught)
    assert len(stale.names) == 4
