"""Preflight of a profile: every dataset, weight file and evaluator it needs, checked at once.

    python -m asymlib.check --profile paper [--data DIR] [--config FILE] [--set KEY=VALUE ...] [--decode]
                            [--format table|json]

Each problem names what is missing or malformed, the path the code reads, and how to obtain it. The command
exits 1 when anything the profile needs is missing (0 when all is there), before any training starts. Nothing
is downloaded.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import Profile, get_profile, list_profiles, load_overrides, parse_overrides
from .errors import AsymlibError

__all__ = ["Problem", "check_profile", "DATASET_SOURCES", "main"]

# Where each dataset is released and the folder asymlib expects under the data root (README, "Datasets").
DATASET_SOURCES = {
    "kadid10k": "KADID-10K (Lin et al., 2019), database.mmsp-kn.de/kadid-10k-database.html: unpack so that "
                "kadid10k/dmos.csv and kadid10k/images/ exist",
    "tid2013": "TID2013 (Ponomarenko et al., 2015), ponomarenko.info/tid2013.htm: kadid-style folder with "
               "mos_with_names.txt, distorted_images/, reference_images/",
    "liu13": "Liu13 motion-deblurring quality database (Liu et al., 2013): a dist_img,ref_img,score table "
             "(see asymlib.iqa.datasets.Liu13FR)",
    "ma17": "Ma17 super-resolution quality database (Ma et al., 2017): a dist_img,ref_img,score table "
            "(see asymlib.iqa.datasets.Ma17FR)",
    "tqd": "TQD texture quality database (Ding et al., 2020, DISTS): unpack so that tqd/TQD_mos.txt and "
           "tqd/images/ exist",
    "koniq10k": "KonIQ-10k (Hosu et al., 2020), database.mmsp-kn.de/koniq-10k-database.html: "
                "koniq10k/koniq10k_scores_and_distributions.csv and the 1024x768 images",
    "div2k": "DIV2K (Agustsson and Timofte, 2017), data.vision.ee.ethz.ch/cvl/DIV2K: DIV2K_train_HR/ and "
             "DIV2K_valid_HR/ under <data>/DIV2K/",
}


@dataclass(frozen=True)
class Problem:
    """One thing a profile needs that is not usable here: ``kind`` (dataset/weights/evaluator), ``name``,
    ``path`` (what the code reads), ``detail`` (the error) and ``remedy`` (how to obtain it)."""

    kind: str
    name: str
    path: str
    detail: str
    remedy: str


def _fr_datasets(profile: Profile) -> list[str]:
    ms = profile.metric_study
    return [d for d in dict.fromkeys([ms.train_set, *ms.eval_sets]) if d != "synthetic"]


def _nr_datasets(profile: Profile) -> list[str]:
    names = [d for d in profile.gan_init.nr_datasets if d != "synthetic"]
    if profile.sr.calibration.dataset == "koniq10k":
        names.append("koniq10k")
    return list(dict.fromkeys(names))


def _check_datasets(profile: Profile, decode: bool) -> list[Problem]:
    from .iqa.datasets import create_fr_dataset, create_nr_dataset

    root = profile.resolved_data_root()
    out = []
    for kind, names, factory in (("FR", _fr_datasets(profile), create_fr_dataset),
                                 ("NR", _nr_datasets(profile), create_nr_dataset)):
        for name in names:
            try:
                factory(name, root / name).validate(decode=decode)
            except AsymlibError as exc:
                out.append(Problem("dataset", f"{name} ({kind})", str(root / name), str(exc).split("\n")[0],
                                   DATASET_SOURCES.get(name, "see README, 'Datasets'")))
    data = profile.sr.data
    if data.source == "folder":
        from .sr.data import IMAGE_EXTENSIONS

        for part in (data.train, data.val):
            folder = root / part
            ok = folder.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())
            if not ok:
                detail = "folder not found" if not folder.is_dir() else "no images in the folder"
                out.append(Problem("dataset", f"SR HR images ({part})", str(folder), detail, DATASET_SOURCES["div2k"]))
    return out


def _imagenet_backbones(profile: Profile) -> list[str]:
    from .metrics.registry import get_metric_preset

    names: list[str] = []
    if profile.weights == "imagenet":
        metrics = [*profile.metric_study.metrics, *profile.sr.metrics, profile.discriminators.metric,
                   *profile.figures.recovery_metrics, *profile.figures.texture_metrics, profile.figures.ae_metric]
        names += [get_metric_preset(m).backbone for m in metrics if get_metric_preset(m).weights == "imagenet"]
    if "imagenet" in profile.gan_init.initializations and profile.gan_init.require_imagenet:
        names += list(profile.gan_init.backbones)
    return list(dict.fromkeys(names))


def _check_weights(profile: Profile) -> list[Problem]:
    from .backbones import get_backbone_spec, imagenet_weights_location

    out = []
    for name in _imagenet_backbones(profile):
        found, expected = imagenet_weights_location(name)
        if found is None:
            timm_name = get_backbone_spec(name).timm_name
            out.append(Problem("weights", f"{name} (ImageNet)", expected, "not in the local cache",
                               f"on a connected machine: timm.create_model({timm_name!r}, pretrained=True), then copy "
                               f"the Hugging Face cache (or set ASYMLIB_ALLOW_DOWNLOAD=1 once)"))
    return out


def _check_evaluators(profile: Profile) -> list[Problem]:
    from .sr.evaluators import evaluator_status

    out = []
    for name in profile.sr.evaluators:
        st = evaluator_status(name)
        if not st.available:
            out.append(Problem("evaluator", st.display, "", st.reason,
                               "put its weights in the cache named in the detail (README, 'SR optimization'), or "
                               "leave it out: --set 'sr.evaluators=[...]'"))
    return out


def check_profile(profile: Profile, decode: bool = False) -> list[Problem]:
    """Every missing or malformed dataset, ImageNet weight file and NR evaluator ``profile`` needs.

    In the smoke profile the paper's evaluators are listed to be reported as unavailable; they are optional
    there and not problems. ``decode=True`` also reads every image fully (slow on the paper's datasets).
    """
    problems = _check_datasets(profile, decode) + _check_weights(profile)
    evaluators = _check_evaluators(profile)
    if not profile.is_smoke:
        problems += evaluators
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asymlib.check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", choices=list_profiles())
    ap.add_argument("--data", type=Path, default=None, help="dataset root (default: $ASYMLIB_DATA or ./data)")
    ap.add_argument("--config", type=Path, default=None, help="YAML file of profile overrides")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted profile override")
    ap.add_argument("--decode", action="store_true", help="read every image fully (slow)")
    ap.add_argument("--format", choices=["table", "json"], default="table")
    args = ap.parse_args(argv)
    try:
        overrides = {**(load_overrides(args.config) if args.config else {}), **parse_overrides(args.set)}
        if args.data is not None:
            overrides["data_root"] = str(args.data)
        profile = get_profile(args.profile, **overrides)
        problems = check_profile(profile, decode=args.decode)
    except AsymlibError as exc:
        print(f"[check] error: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps([asdict(p) for p in problems], indent=2))
    else:
        for p in problems:
            print(f"[{p.kind}] {p.name}: {p.detail}" + (f"\n    expected at: {p.path}" if p.path else "")
                  + f"\n    how to obtain: {p.remedy}")
        where = profile.resolved_data_root()
        print(f"\n[check] {args.profile} profile (data root {where}): "
              + (f"{len(problems)} problem(s)" if problems else "everything it needs is here"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
