"""Command line of ``python -m asymlib.bench`` (flags in :func:`parse_args`)."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from .report import STEP_COST_KINDS, format_table, step_costs, write_results, write_step_costs
from .runner import BENCHMARKS, STEP_COST_BENCHMARKS, run_benchmarks
from .scaling import scaling_table
from .settings import Settings

__all__ = ["DEFAULT_OUTPUT", "main", "parse_args", "settings_from_args"]

DEFAULT_OUTPUT = Path("build") / "bench"
STEP_COSTS_NAME = "step_costs.json"


def _csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed flags; ``only`` becomes a list of :data:`~asymlib.bench.runner.BENCHMARKS` names and
    ``write_step_costs`` the step-cost file's path (None: not written)."""
    doc = sys.modules[__package__].__doc__ or ""
    p = argparse.ArgumentParser(prog="python -m asymlib.bench", description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats, small scaling grid (< 5 min on 2 cores)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="auto: CUDA when present (DISTS then runs on CPU and CUDA)")
    p.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="folder for bench.csv / bench.json")
    p.add_argument("--write-step-costs", nargs="?", const="", default=None, metavar="PATH",
                   help=f"write the seconds per training step of each run kind ({', '.join(STEP_COST_KINDS)}) "
                        f"measured by the rows of {', '.join(STEP_COST_BENCHMARKS)} to PATH (default: "
                        f"<output>/{STEP_COSTS_NAME}); format in asymlib.bench.report")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default: per benchmark)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per variant before timing")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile in the optimized SR step (auto: on CUDA only)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables of one DISTS step")
    # sizes, mainly for tests and quick looks
    p.add_argument("--dists-batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--dists-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--scaling-sizes", type=_csv_ints, default=None, help=argparse.SUPPRESS)
    p.add_argument("--scaling-batches", type=_csv_ints, default=None, help=argparse.SUPPRESS)
    p.add_argument("--nr-images", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--nr-size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown or not only:
        p.error(f"--only: unknown benchmark(s) {unknown}; choose from {','.join(BENCHMARKS)}")
    if args.write_step_costs is not None and not set(only) & set(STEP_COST_BENCHMARKS):
        p.error(f"--write-step-costs needs at least one of {','.join(STEP_COST_BENCHMARKS)} in --only")
    args.only = only
    if args.write_step_costs is not None:
        args.write_step_costs = Path(args.write_step_costs or Path(args.output) / STEP_COSTS_NAME)
    return args


def settings_from_args(args: argparse.Namespace) -> Settings:
    s = Settings(quick=args.quick, repeats=args.repeats, warmup=args.warmup, compile=args.compile,
                 profile=args.profile)
    if args.quick:
        s.scaling_sizes, s.scaling_batches, s.nr_images = (64, 128, 256), (1, 4), 4
    overrides = {"dists_batch": args.dists_batch, "dists_size": args.dists_size, "scaling_sizes": args.scaling_sizes,
                 "scaling_batches": args.scaling_batches, "nr_images": args.nr_images, "nr_size": args.nr_size}
    for key, value in overrides.items():
        if value is not None:
            setattr(s, key, value)
    return s


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub: every weight here is random
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = settings_from_args(args)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows, meta = run_benchmarks(args.only, args.device, s, log)
    print(f"asymlib.bench  {meta['date']}  commit {meta['git_commit']}  torch {meta['torch_version']}  "
          f"device {meta['primary_device']} ({meta['cuda_device'] or meta['cpu_model']}, "
          f"{meta['torch_threads']} threads)  load average {meta['loadavg_start']} -> {meta['loadavg_end']}  "
          f"{meta['seconds']} s")
    print(format_table(rows))
    if meta.get("scaling"):
        print()
        print(scaling_table(meta["scaling"]))
    csv_path, json_path = write_results(args.output, rows, meta)
    print(f"\nwrote {csv_path} and {json_path}")
    if args.write_step_costs is not None:
        costs = step_costs(rows, meta)
        path = write_step_costs(args.write_step_costs, rows, meta)
        per_step = ", ".join(f"{k} {v:.4g}" for k, v in costs["seconds_per_step"].items()) or "none measured"
        per_item = ", ".join(f"{k} {v:.4g}" for k, v in costs["seconds_per_item"].items())
        missing = [k for k in STEP_COST_KINDS if k not in costs["seconds_per_step"]]
        print(f"wrote {path}: seconds per step: {per_step}" + (f"; per item: {per_item}" if per_item else "")
              + (f"; not measured: {', '.join(missing)}" if missing else ""))
    return 0
