"""The ``asymlib`` command: score image folders with a metric; the study, run-graph, benchmark and preflight
tools under one name.

    asymlib score --metric dists --backbone vgg16 --weights imagenet|random|PATH [--metric-weights FILE]
                  -t DIST_DIR -r REF_DIR [--output scores.csv] [--device cpu] [--batch-size N]
    asymlib study ...    same as python -m asymlib.study ...
    asymlib runs ...     same as python -m asymlib.runs ...
    asymlib bench ...    same as python -m asymlib.bench ...
    asymlib check ...    same as python -m asymlib.check ...
    asymlib rehearsal .. same as python -m asymlib.rehearsal ...

``score`` pairs files by name (``DIST_DIR/x.png`` with ``REF_DIR/x.png``) and writes a CSV ``dist,ref,score``
(atomically with ``--output``, else to stdout). Exit status: 0, or 2 on a usage, data or weights error.
"""
from __future__ import annotations

import argparse
import importlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "ALIASES"]

# subcommand -> (module whose main(argv) it runs, help line)
ALIASES: dict[str, tuple[str, str]] = {
    "study": ("asymlib.study", "run the study notebooks (python -m asymlib.study)"),
    "runs": ("asymlib.pipeline.cli", "plan, train and inspect the run graph (python -m asymlib.runs)"),
    "bench": ("asymlib.bench.cli", "performance benchmarks (python -m asymlib.bench)"),
    "check": ("asymlib.check", "preflight of a profile's data and weights (python -m asymlib.check)"),
    "rehearsal": ("asymlib.rehearsal", "write rehearsal fixtures for the paper profile (python -m asymlib.rehearsal)"),
}


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(prog="asymlib", description="Score image folders with a perceptual metric; "
                                 "run the study, run-graph, benchmark and preflight tools.")
    ap.add_argument("--version", action="version", version=f"asymlib {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{score,study,runs,bench,check,rehearsal}")
    s = sub.add_parser("score", help="score distorted images against references (CSV dist,ref,score)",
                       description="Score every image of DIST_DIR against the file of the same name in REF_DIR.")
    s.add_argument("--metric", default="dists", help="metric name (asymlib.list_metrics(); default dists)")
    s.add_argument("--backbone", default=None,
                   help="backbone (asymlib.list_backbones()); default: the --metric-weights file's, else vgg16")
    s.add_argument("--weights", default=None,
                   help="backbone weights: imagenet, random or a checkpoint path (default: recorded in the "
                        "--metric-weights file, else imagenet); an asymlib metric export is read as metric weights")
    s.add_argument("--metric-weights", type=Path, default=None,
                   help="alpha/beta file: official DISTS weights.pt (pyiqa layout) or an asymlib .safetensors export")
    s.add_argument("--seed", type=int, default=None, help="seed of random weights (default 0)")
    s.add_argument("-t", "--distorted", type=Path, required=True, metavar="DIST_DIR", help="distorted images")
    s.add_argument("-r", "--reference", type=Path, required=True, metavar="REF_DIR", help="reference images")
    s.add_argument("--output", "-o", type=Path, default=None, help="CSV to write (default: stdout)")
    s.add_argument("--device", default="cpu", help="torch device (default cpu)")
    s.add_argument("--batch-size", type=int, default=1, help="pairs per forward pass, same-size images only")
    for name, (_, help_line) in ALIASES.items():
        sub.add_parser(name, help=help_line, add_help=False)
    return ap


def _score(args: argparse.Namespace) -> int:
    import pandas as pd
    import torch

    from .atomic import atomic_write_csv
    from .errors import AsymlibError
    from .iqa.score_folders import pair_folders, score_pairs
    from .metrics import create_metric

    if args.batch_size < 1:
        print(f"[score] error: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    options = {"backbone": args.backbone, "weights": args.weights, "metric_weights": args.metric_weights,
               "seed": args.seed}
    try:
        pairs = pair_folders(args.distorted, args.reference)
        metric = create_metric(args.metric, device=torch.device(args.device),
                               **{k: v for k, v in options.items() if v is not None})
        scores = score_pairs(metric, pairs, batch_size=args.batch_size, device=torch.device(args.device))
    except (AsymlibError, RuntimeError) as exc:
        print(f"[score] error: {exc}", file=sys.stderr)
        return 2
    table = pd.DataFrame({"dist": [str(p.dist) for p in pairs], "ref": [str(p.ref) for p in pairs],
                          "score": scores})
    if args.output is not None:
        atomic_write_csv(table, args.output, float_format="%.8g")
        where, log = str(args.output), sys.stdout
    else:
        buf = io.StringIO()
        table.to_csv(buf, index=False, float_format="%.8g")
        sys.stdout.write(buf.getvalue())
        where, log = "stdout", sys.stderr
    backbone = getattr(metric, "backbone", None)
    name = args.metric.lower()
    desc = f"{name} over {backbone.name}, {backbone.weights_source}" if backbone is not None else name
    better = "lower" if getattr(metric, "lower_better", True) else "higher"
    s = table["score"]
    print(f"[score] {len(table)} pairs, {desc}: mean {s.mean():.4f}, min {s.min():.4f}, max {s.max():.4f} "
          f"({better} is better) -> {where}", file=log)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``asymlib <command> ...``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ALIASES:
        module = importlib.import_module(ALIASES[args[0]][0])
        return int(module.main(args[1:]) or 0)
    return _score(_parser().parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
