"""Rehearsal fixtures: the paper profile's inputs in miniature, in their released layouts.

    python -m asymlib.rehearsal DIR [--print-env]

writes under ``DIR``

- ``data/``: every dataset the paper profile reads, a few images each, in the layout its authors release
  (KADID-10K, TID2013, Liu13, Ma17, TQD, KonIQ-10k, DIV2K; see :data:`asymlib.check.DATASET_SOURCES`), with
  KADID-style distortions of the embedded images and scores that fall with the distortion level;
- ``cache/``: stand-in RANDOM weights for every ImageNet backbone the profile needs, in the exact caches the
  loaders read (the Hugging Face hub cache for timm tags, torchvision's hub checkpoints for VGG-16 and
  ResNet-50), and a DeQA-Score stand-in as a local remote-code model folder (``ASYMLIB_DEQA_PATH``);
- ``data/REHEARSAL``: a marker that makes every banner of a study on this data say "rehearsal fixtures".

and prints the environment (``ASYMLIB_DATA``, ``HF_HUB_CACHE``, ``TORCH_HOME``) and the command that runs the
whole paper-profile study on them with the shrunk schedules of :data:`REHEARSAL_CONFIG` (passed through the
ordinary ``--config`` override surface). Every code path of the paper profile runs except scale; its numbers
mean nothing.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path, atomic_write_text

__all__ = ["REHEARSAL_CONFIG", "REHEARSAL_MARKER", "is_rehearsal_data", "rehearsal_environment",
           "write_datasets", "write_rehearsal", "write_standin_deqa", "write_standin_weights"]

REHEARSAL_CONFIG = Path(__file__).resolve().parent / "resources" / "rehearsal.yaml"
REHEARSAL_MARKER = "REHEARSAL"

# Embedded images used as references (distinct contents, so content-disjoint splits have groups to split).
_REFERENCES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field")
_DISTORTIONS = ("gaussian_blur", "jpeg")
_IQA_REFERENCES = 4  # contents per IQA dataset: enough for a 6:2:2 content-disjoint split
_LEVELS = (1, 3, 5)


def is_rehearsal_data(data_root: str | Path | None = None) -> bool:
    """Whether ``data_root`` (default: ``$ASYMLIB_DATA`` or ``./data``) holds rehearsal fixtures."""
    root = Path(data_root or os.environ.get("ASYMLIB_DATA", "data")).expanduser()
    return (root / REHEARSAL_MARKER).is_file()


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------
def _resized(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``image`` (3, H, W) center-cropped to the aspect ``width:height`` and resized (antialiased bicubic)."""
    _, h, w = image.shape
    if w * height > h * width:  # too wide
        cw = h * width // height
        image = image[:, :, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = w * height // width
        image = image[:, (h - ch) // 2:(h - ch) // 2 + ch, :]
    out = torch.nn.functional.interpolate(image[None], size=(height, width), mode="bicubic", antialias=True,
                                          align_corners=False)
    return out[0].clamp(0.0, 1.0)


def _references(width: int, height: int, names: Sequence[str] = _REFERENCES[:_IQA_REFERENCES]) -> list[torch.Tensor]:
    from .data.corpus import embedded_images

    return [_resized(im, width, height) for im in embedded_images(list(names)).values()]


def _save(image: torch.Tensor, path: Path, fmt: str | None = None) -> None:
    """Write ``image`` (3, H, W) in [0, 1] as 8-bit RGB; ``fmt`` as PIL names it (default: from the suffix)."""
    from .imageio import to_pil

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    to_pil(image).save(buf, format=fmt or path.suffix.lstrip(".").upper().replace("JPG", "JPEG"), quality=95)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _distorted_set(refs: Sequence[torch.Tensor], seed: int) -> Iterable[tuple[int, int, int, torch.Tensor, float]]:
    """``(ref index, distortion index, level, image, quality)``: quality in [0, 1], falling with the level, with
    a little per-image noise (so that correlations are high but not all 1)."""
    from .data.distortions import distort

    rng = np.random.default_rng(seed)
    for r, ref in enumerate(refs):
        for d, kind in enumerate(_DISTORTIONS):
            for level in _LEVELS:
                quality = float(np.clip(1.0 - 0.2 * level + rng.normal(0.0, 0.05), 0.0, 1.0))
                yield r, d, level, distort(ref, kind, level, seed=seed + r), quality


# ----------------------------------------------------------------------------------------------
# Datasets in their released layouts
# ----------------------------------------------------------------------------------------------
def _write_fr(root: Path, seed: int, annotation: str, header: str | None, ref_path: Callable[[int], str],
              dist_path: Callable[[int, int, int], str], row: Callable[[str, str, float], str],
              fmt: str | None = None) -> None:
    """An FR dataset of the distorted embedded images: references at ``ref_path(r)``, distorted images at
    ``dist_path(r, d, level)`` (paths relative to ``root``), one ``row(ref, dist, quality)`` per distorted image
    in ``annotation`` (after ``header``)."""
    refs = _references(96, 72)
    for r, ref in enumerate(refs):
        _save(ref, root / ref_path(r), fmt=fmt)
    rows = [] if header is None else [header]
    for r, d, level, img, q in _distorted_set(refs, seed):
        name = dist_path(r, d, level)
        _save(img, root / name, fmt=fmt)
        rows.append(row(ref_path(r), name, q))
    atomic_write_text(root / annotation, "\n".join(rows) + "\n")


def _write_kadid(root: Path, seed: int) -> None:
    """KADID-10K: ``dmos.csv`` (dist_img,ref_img,dmos,var; DMOS 1-5, higher is better) and ``images/`` with
    ``I01.png`` references and ``I01_01_01.png`` (reference, distortion, level) distorted images, 512x384 in
    the release (here 96x72)."""
    _write_fr(root, seed, "dmos.csv", "dist_img,ref_img,dmos,var", lambda r: f"images/I{r + 1:02d}.png",
              lambda r, d, lv: f"images/I{r + 1:02d}_{d + 1:02d}_{lv:02d}.png",
              lambda ref, dist, q: f"{Path(dist).name},{Path(ref).name},{1 + 4 * q:.3f},{0.5 + q:.3f}")


def _write_tid2013(root: Path, seed: int) -> None:
    """TID2013: ``mos_with_names.txt`` ("<MOS> <name>" lines, MOS 0-9), ``distorted_images/i01_01_1.bmp`` and
    ``reference_images/I01.BMP`` (the release's mixed case), 512x384 BMP in the release (here 96x72)."""
    _write_fr(root, seed + 1, "mos_with_names.txt", None, lambda r: f"reference_images/I{r + 1:02d}.BMP",
              lambda r, d, lv: f"distorted_images/i{r + 1:02d}_{d + 1:02d}_{lv}.bmp",
              lambda ref, dist, q: f"{9 * q:.5f} {Path(dist).name}", fmt="BMP")


def _write_koniq(root: Path, seed: int) -> None:
    """KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` (image_name, c1..c5, c_total, MOS 1-5, SD,
    MOS_zscore 1-100) and ``1024x768/<id>.jpg`` (here 128x96)."""
    refs = _references(128, 96)
    header = '"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"'
    rows = [header]
    for i, (r, d, level, img, q) in enumerate(_distorted_set(refs, seed + 2)):
        if d == 1 and level == 5:
            continue  # keep the set a little uneven, as real MOS sets are
        name = f"{10_000_000 + 7919 * i}.jpg"
        _save(img, root / "1024x768" / name)
        counts = np.random.default_rng(seed + i).multinomial(100, np.full(5, 0.2))
        rows.append(f'"{name}",{",".join(str(c) for c in counts)},100,{1 + 4 * q:.4f},0.6,{1 + 99 * q:.4f}')
    atomic_write_text(root / "koniq10k_scores_and_distributions.csv", "\n".join(rows) + "\n")


def _write_div2k(root: Path) -> None:
    """DIV2K: ``DIV2K_train_HR/0001.png`` ... and ``DIV2K_valid_HR/0801.png`` ... (2K images in the release;
    here 192x144 and 128x96)."""
    for i, ref in enumerate(_references(192, 144, _REFERENCES[:4])):
        _save(ref, root / "DIV2K_train_HR" / f"{i + 1:04d}.png")
    for i, ref in enumerate(_references(128, 96, _REFERENCES[4:])):
        _save(ref, root / "DIV2K_valid_HR" / f"{801 + i:04d}.png")


def _write_pair_table(root: Path, table: str, seed: int) -> None:
    """A ``dist_img,ref_img,score`` table (scores 0-10) with ``reference/`` and ``distorted/`` images."""
    _write_fr(root, seed, table, "dist_img,ref_img,score", lambda r: f"reference/r{r + 1:02d}.png",
              lambda r, d, lv: f"distorted/r{r + 1:02d}_{d + 1}_{lv}.png",
              lambda ref, dist, q: f"{dist},{ref},{10 * q:.3f}")


def _write_tqd(root: Path, seed: int) -> None:
    """TQD: ``TQD_mos.txt`` (headerless ``ref<TAB>dist<TAB>score`` lines, scores in [0, 1]) and
    ``images/<k>-0.png`` references with ``images/<k>-<j>.png`` versions (k not contiguous, as released)."""
    ids = (5, 11, 12, 13)
    _write_fr(root, seed, "TQD_mos.txt", None, lambda r: f"images/{ids[r]}-0.png",
              lambda r, d, lv: f"images/{ids[r]}-{d * len(_LEVELS) + _LEVELS.index(lv) + 1}.png",
              lambda ref, dist, q: f"{ref}\t{dist}\t{0.35 + 0.55 * q:.5f}")


def write_datasets(data_root: str | Path, seed: int = 0) -> Path:
    """Write every dataset of the paper profile under ``data_root`` (``<data_root>/<name>/``) and the rehearsal
    marker; returns ``data_root``. Takes a few seconds."""
    root = Path(data_root)
    root.mkdir(parents=True, exist_ok=True)
    _write_kadid(root / "kadid10k", seed)
    _write_tid2013(root / "tid2013", seed)
    _write_pair_table(root / "liu13", "liu13.csv", seed + 3)
    _write_pair_table(root / "ma17", "ma17.csv", seed + 4)
    _write_tqd(root / "tqd", seed + 5)
    _write_koniq(root / "koniq10k", seed)
    _write_div2k(root / "DIV2K")
    atomic_write_text(root / REHEARSAL_MARKER,
                      "Rehearsal fixtures written by python -m asymlib.rehearsal: miniature datasets in their "
                      "released layouts, synthetic scores. Results computed on them mean nothing.\n")
    return root


# ----------------------------------------------------------------------------------------------
# Stand-in weights in the loaders' caches
# ----------------------------------------------------------------------------------------------
_STANDIN_REVISION = "0" * 32 + "5eed0000"  # a commit-hash-shaped revision that no real hub file has


def _hf_file(hub_cache: Path, repo_id: str, filename: str) -> Path:
    """Path of ``filename`` in the Hugging Face hub cache layout (``models--org--name/snapshots/<rev>/``), with
    ``refs/main`` pointing at the revision, as ``huggingface_hub`` writes it."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    atomic_write_text(repo / "refs" / "main", _STANDIN_REVISION)
    path = repo / "snapshots" / _STANDIN_REVISION / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _standin_state_dict(timm_name: str, seed: int) -> dict[str, torch.Tensor]:
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(timm_name, pretrained=False)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def write_standin_weights(cache_root: str | Path, backbones: Iterable[str], seed: int = 0) -> list[Path]:
    """Random weights for ``backbones`` where the ImageNet loader looks for them.

    VGG-16 and ResNet-50 go to torchvision's ``$TORCH_HOME/hub/checkpoints/<file>`` (torchvision's keys; the
    VGG-16 file leaves out the 120M-parameter classifier no feature extractor reads), every other backbone to
    the Hugging Face hub cache as ``model.safetensors`` of its timm tag. ``cache_root`` receives ``hf/hub`` and
    ``torch``; use :func:`rehearsal_environment` to point the loaders there.
    """
    from safetensors.torch import save_file

    from .backbones import _TORCHVISION_FILES, _vgg16_features, get_backbone_spec

    cache = Path(cache_root)
    written = []
    for name in dict.fromkeys(backbones):
        spec = get_backbone_spec(name)
        tv_file = _TORCHVISION_FILES.get(spec.timm_name)
        if tv_file:
            if spec.kind == "vgg_l2pool":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    sd = {f"features.{k}": v for k, v in _vgg16_features().state_dict().items()}
            else:
                sd = _standin_state_dict(spec.timm_name, seed)
            path = cache / "torch" / "hub" / "checkpoints" / tv_file
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save(sd, tmp)
        else:
            import timm

            hub_id = timm.models.get_pretrained_cfg(spec.timm_name).hf_hub_id
            path = _hf_file(cache / "hf" / "hub", hub_id, "model.safetensors")
            sd = _standin_state_dict(spec.timm_name, seed)
            with atomic_path(path) as tmp:
                save_file(sd, str(tmp), metadata={"format": "pt", "asymlib": "rehearsal stand-in, random"})
        written.append(path)
    return written


_DEQA_CONFIG = """from transformers import PretrainedConfig


class StandinDeQAConfig(PretrainedConfig):
    model_type = "asymlib_standin_deqa"
"""

_DEQA_MODELING = """import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from .configuration_standin import StandinDeQAConfig


class StandinDeQA(PreTrainedModel):
    \"\"\"Rehearsal stand-in for DeQA-Score: same loading path (remote code, local folder) and the same
    score(list of PIL images) -> 1..5 call; the score is a random affine map of image sharpness.\"\"\"

    config_class = StandinDeQAConfig

    def __init__(self, config):
        super().__init__(config)
        self.head = nn.Linear(1, 1)
        self.post_init()

    def _init_weights(self, module):
        pass

    @torch.no_grad()
    def score(self, images):
        feats = []
        for im in images:
            x = torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
            feats.append((x[1:, :] - x[:-1, :]).abs().mean() + (x[:, 1:] - x[:, :-1]).abs().mean())
        f = torch.stack(feats)[:, None].to(self.head.weight.dtype)
        return 1.0 + 4.0 * torch.sigmoid(self.head(f * 20.0 - 1.0))[:, 0]
"""


def write_standin_deqa(folder: str | Path, seed: int = 0) -> Path:
    """A DeQA-Score stand-in as a local model folder (``config.json`` with ``auto_map`` to remote code,
    ``model.safetensors``): what ``ASYMLIB_DEQA_PATH`` points at. Loaded through the same
    ``AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`` call as the real model."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "configuration_standin.py", _DEQA_CONFIG)
    atomic_write_text(folder / "modeling_standin.py", _DEQA_MODELING)
    config = {"model_type": "asymlib_standin_deqa", "architectures": ["StandinDeQA"],
              "auto_map": {"AutoConfig": "configuration_standin.StandinDeQAConfig",
                           "AutoModelForCausalLM": "modeling_standin.StandinDeQA"}}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2))
    g = torch.Generator().manual_seed(seed)
    weights = {"head.weight": 1.0 + torch.rand(1, 1, generator=g), "head.bias": torch.zeros(1)}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(weights, str(tmp), metadata={"format": "pt"})
    return folder


def rehearsal_environment(root: str | Path) -> dict[str, str]:
    """Environment variables that point asymlib's dataset root and weight caches at ``root``'s fixtures."""
    root = Path(root).resolve()
    return {"ASYMLIB_DATA": str(root / "data"), "HF_HUB_CACHE": str(root / "cache" / "hf" / "hub"),
            "TORCH_HOME": str(root / "cache" / "torch"), "ASYMLIB_DEQA_PATH": str(root / "cache" / "deqa"),
            "HF_MODULES_CACHE": str(root / "cache" / "hf" / "modules"), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


def write_rehearsal(root: str | Path, seed: int = 0) -> dict[str, str]:
    """Datasets and stand-in weights for the paper profile under ``root``; returns :func:`rehearsal_environment`."""
    from .check import _imagenet_backbones
    from .config import get_profile, load_overrides

    root = Path(root)
    write_datasets(root / "data", seed)
    profile = get_profile("paper", **load_overrides(REHEARSAL_CONFIG))
    write_standin_weights(root / "cache", _imagenet_backbones(profile), seed)
    write_standin_deqa(root / "cache" / "deqa", seed)
    return rehearsal_environment(root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asymlib.rehearsal", description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder to write data/ and cache/ into")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--print-env", action="store_true", help="only print the environment of an existing folder")
    args = ap.parse_args(argv)
    env = rehearsal_environment(args.root) if args.print_env else write_rehearsal(args.root, args.seed)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    print(json.dumps(env, indent=2))
    print(f"\nrun the paper profile on them:\n  {exports} python -m asymlib.study --profile paper "
          f"--config {REHEARSAL_CONFIG} --train-missing --output {args.root / 'study'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
