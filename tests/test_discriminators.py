"""Discriminators: head shapes per backbone, stage choice (both heads on the last map), spectral norm,
backbone export, ESRGAN VGG."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from asymlib.backbones import create_feature_extractor
from asymlib.discriminators import (
    HEADS,
    Discriminator,
    create_discriminator,
    list_discriminator_backbones,
    list_heads,
    read_backbone_export,
)
from asymlib.errors import (
    CheckpointError,
    ConfigError,
    InputSizeError,
    UnknownNameError,
)

torch.set_num_threads(2)


def _sn_count(module: nn.Module) -> int:
    return sum(1 for m in module.modules() if hasattr(m, "parametrizations"))


def test_registry_and_unknown_names():
    assert list_heads() == ["patch", "vanilla"] and set(HEADS) == {"patch", "vanilla"}
    assert {"vgg16", "resnet50", "dinov2_vits14", "esrgan_vgg128"} <= set(list_discriminator_backbones())
    with pytest.raises(UnknownNameError, match="unknown discriminator head 'dense'"):
        create_discriminator("vgg16", head="dense")
    with pytest.raises(UnknownNameError):
        create_discriminator("no_such_backbone_xyz")
    with pytest.raises(ConfigError):
        create_discriminator("vgg16", head="patch", stage=7)


def test_vgg16_heads_shapes_gradients_and_spectral_norm():
    x = torch.rand(1, 3, 64, 64)
    vanilla = create_discriminator("vgg16", head="vanilla", seed=1)
    assert isinstance(vanilla, Discriminator) and vanilla.stage == 4
    out = vanilla(x)
    assert out.shape == (1, 1)
    out.sum().backward()
    assert vanilla.backbone.body.features[0].weight.grad is not None
    assert _sn_count(vanilla) == 0 and vanilla.frozen_backbone_parameters == []

    patch = create_discriminator("vgg16", head="patch", spectral_norm=True, seed=1)
    assert (patch.stage, patch.stage_stride) == (4, 16)  # relu5_3
    assert patch(x).shape == (1, 1, 4, 4)
    assert _sn_count(patch) == 13 + 2  # 13 VGG convs + 2 head convs
    for _ in range(50):  # each access in train mode runs one power iteration
        w = patch.head.conv1.weight.detach().flatten(1)
    assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=0.05)


def test_resnet50_patch_reads_layer4_and_layer3_is_an_option():
    x = torch.rand(2, 3, 64, 64)
    vanilla = create_discriminator("resnet50", head="vanilla")
    assert vanilla(x).shape == (2, 1) and vanilla.frozen_backbone_parameters == []
    patch = create_discriminator("resnet50", head="patch")
    assert (patch.stage, patch.stage_stride) == (4, 32)  # layer4, as the vanilla head
    assert patch(x).shape == (2, 1, 2, 2) and patch.frozen_backbone_parameters == []
    assert create_discriminator("resnet50", head="patch", stage="last").stage == 4
    # the finer map of the former default, on request: layer3 (stride 16), layer4 then frozen
    fine = create_discriminator("resnet50", head="patch", stage="stride16")
    assert (fine.stage, fine.stage_stride) == (3, 16) and fine(x).shape == (2, 1, 4, 4)
    frozen = fine.frozen_backbone_parameters
    assert frozen and all(".layer4." in k for k in frozen)
    n_layer4 = sum(1 for k, _ in fine.backbone.named_parameters() if ".layer4." in k)
    assert len(frozen) == n_layer4 == 30
    assert all(not p.requires_grad for k, p in fine.backbone.named_parameters() if k in frozen)
    assert create_discriminator("resnet50", head="patch", stage=3).stage == 3
    with pytest.raises(ConfigError, match="unknown stage rule 'stride8'"):
        create_discriminator("resnet50", head="patch", stage="stride8")


# the patch logit grid at 128 px (at 256 px: twice as many rows and columns, DINOv2 19 x 19 with padding)
_GRID_128 = {"vgg16": 8, "resnet50": 4, "convnext_tiny": 4, "swin_t": 4, "clip_vit_b16": 8, "dinov2_vits14": 10,
             "dinov2_vitb14": 10, "esrgan_vgg128": 4, "esrgan_vgg256": 2}


_CHEAP = {"vgg16", "resnet50", "dinov2_vits14", "esrgan_vgg128", "esrgan_vgg256"}


@pytest.mark.parametrize("backbone", [b if b in _CHEAP else pytest.param(b, marks=pytest.mark.slow)
                                      for b in list_discriminator_backbones()])
def test_vanilla_and_patch_share_every_backbone_parameter(backbone):
    """Paper Sec. 3.4: the patch discriminator changes only the regression head. Both heads read the last map,
    so the backbone parameters (names, shapes, trainability) are identical, and all of them get gradients
    (except a transformer's final norm, which no feature map goes through, frozen by both heads alike)."""
    vanilla = create_discriminator(backbone, head="vanilla", seed=0)
    patch = create_discriminator(backbone, head="patch", seed=0)
    n_maps = len(patch.backbone.reductions)
    assert vanilla.stage == patch.stage == n_maps - 1
    assert patch.stage_stride == patch.backbone.reductions[-1]
    shapes_v = {k: tuple(p.shape) for k, p in vanilla.backbone.named_parameters()}
    shapes_p = {k: tuple(p.shape) for k, p in patch.backbone.named_parameters()}
    assert shapes_v == shapes_p and shapes_p
    trainable_v = {k for k, p in vanilla.backbone.named_parameters() if p.requires_grad}
    trainable_p = {k for k, p in patch.backbone.named_parameters() if p.requires_grad}
    assert trainable_v == trainable_p
    frozen = set(shapes_p) - trainable_p
    assert frozen == set(vanilla.frozen_backbone_parameters) == set(patch.frozen_backbone_parameters)
    assert frozen <= {"body.model.norm.weight", "body.model.norm.bias"}  # the final norm of ViT / Swin only
    assert len(frozen) / len(shapes_p) < 0.02
    size = 128
    x = torch.rand(1, 3, size, size)
    out = patch(x)
    h, w = out.shape[-2:]
    assert out.shape == (1, 1, h, w) and h > 1 and w > 1
    if backbone in _GRID_128:
        assert (h, w) == (_GRID_128[backbone],) * 2
    out.mean().backward()
    no_grad = [k for k, p in patch.backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []


def test_dinov2_heads_shapes():
    x = torch.rand(2, 3, 64, 64)  # dynamic padding to 70 -> a 5x5 token grid
    vanilla = create_discriminator("dinov2_vits14", head="vanilla")
    assert vanilla(x).shape == (2, 1)
    # the final norm is never applied to intermediates, so it cannot be trained
    assert vanilla.frozen_backbone_parameters == ["body.model.norm.weight", "body.model.norm.bias"]
    patch = create_discriminator("dinov2_vits14", head="patch")
    assert patch(x).shape == (2, 1, 5, 5)
    with pytest.raises(InputSizeError):
        patch(torch.rand(1, 3, 56, 56))  # below the backbone's min_size


def test_export_backbone_roundtrip(tmp_path):
    disc = create_discriminator("vgg16", head="patch", spectral_norm=True, seed=2)
    x = torch.rand(1, 3, 64, 64)
    opt = torch.optim.SGD(disc.parameters(), lr=0.1)
    disc(x).mean().backward()
    opt.step()
    path = disc.export_backbone(tmp_path / "d" / "vgg16_gan.pth", {"iteration": 10, "run": tmp_path, "lr": [1e-4]})
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["backbone"] == "vgg16" and payload["head"] == "patch" and payload["weights_origin"] == "gan"
    assert payload["timm_name"] == "vgg16.tv_in1k" and payload["channels"] == [64, 128, 256, 512, 512]
    assert payload["metadata"] == {"iteration": 10, "run": str(tmp_path), "lr": [1e-4]}
    assert all("parametrizations" not in k for k in payload["state_dict"])
    assert read_backbone_export(path)["keys_sha"] == payload["keys_sha"]

    # the consumer side: a plain feature extractor initialised from the export computes the same features
    fx = create_feature_extractor("vgg16", weights=path)
    disc.eval()
    with torch.no_grad():
        for a, b in zip(disc.backbone(x), fx(x), strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert _sn_count(disc) == 15  # exporting left the discriminator untouched

    with pytest.raises(ConfigError):
        disc.export_backbone(tmp_path / "bad.pth", {"obj": object()})
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pth"):
        read_backbone_export(tmp_path / "junk.pth")


class _BasicSRVGG128(nn.Module):
    """Independent transcription of BasicSR's VGGStyleDiscriminator (input 128) for numerics checks."""

    def __init__(self, nf: int = 64):
        super().__init__()
        chans = [(3, nf), (nf, 2 * nf), (2 * nf, 4 * nf), (4 * nf, 8 * nf), (8 * nf, 8 * nf)]
        self.conv0_0 = nn.Conv2d(3, nf, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(nf, nf, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(nf)
        for i, (cin, cout) in enumerate(chans[1:], 1):
            setattr(self, f"conv{i}_0", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(cout))
            setattr(self, f"conv{i}_1", nn.Conv2d(cout, cout, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(cout))
        self.linear1 = nn.Linear(8 * nf * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x):
        f = self.lrelu(self.conv0_0(x))
        f = self.lrelu(self.bn0_1(self.conv0_1(f)))
        for i in range(1, 5):
            f = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(f)))
            f = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(f)))
        return self.linear2(self.lrelu(self.linear1(f.flatten(1))))


def test_esrgan_vgg128_matches_basicsr_numerics(tmp_path):
    disc = create_discriminator("esrgan_vgg128", head="vanilla", seed=0)
    assert sum(p.numel() for p in disc.parameters()) == 14_499_401
    ref = _BasicSRVGG128()
    mapped = {k.removeprefix("backbone.body.").removeprefix("head."): v for k, v in disc.state_dict().items()}
    ref.load_state_dict(mapped, strict=True)
    x = torch.rand(2, 3, 128, 128)
    disc.eval(), ref.eval()
    with torch.no_grad():
        assert torch.allclose(disc(x), ref(x), atol=1e-5)
    with pytest.raises(InputSizeError):
        disc(torch.rand(2, 3, 96, 96))
    patch = create_discriminator("esrgan_vgg128", head="patch", spectral_norm=True, seed=4)
    assert (patch.stage, patch.stage_stride) == (4, 32) and patch(torch.rand(2, 3, 64, 64)).shape == (2, 1, 2, 2)
    # same seed -> identical weights and spectral-norm vectors; another seed -> different ones
    same = create_discriminator("esrgan_vgg128", head="patch", spectral_norm=True, seed=4).state_dict()
    other = create_discriminator("esrgan_vgg128", head="patch", spectral_norm=True, seed=5).state_dict()
    reference = create_discriminator("esrgan_vgg128", head="patch", spectral_norm=True, seed=4).state_dict()
    assert all(torch.equal(same[k], reference[k]) for k in reference)
    assert not torch.equal(other["head.conv1.parametrizations.weight.original"],
                           reference["head.conv1.parametrizations.weight.original"])
    exported = read_backbone_export(disc.export_backbone(tmp_path / "esrgan.pth", {}))
    assert exported["backbone"] == "esrgan_vgg128" and exported["channels"] == [64, 128, 256, 512, 512]


def test_stage_index_counts_from_the_end_and_names_the_backbone():
    from asymlib.backbones import stage_index
    from asymlib.errors import ConfigError

    fx = create_feature_extractor("vgg16", weights="random")
    assert stage_index(fx, -1) == len(fx.channels) - 1 and stage_index(fx, 0) == 0
    with pytest.raises(ConfigError, match="stage 9 out of range for backbone 'vgg16' with 5 feature maps"):
        stage_index(fx, 9)
    with pytest.raises(ConfigError, match="backbone 'my-d'"):
        stage_index(fx, -6, "my-d")
