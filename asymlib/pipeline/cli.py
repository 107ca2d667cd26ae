"""Command line of the run graph: ``python -m asymlib.runs plan|train|status``.

    python -m asymlib.runs plan --profile P [--output DIR] [--only 02] [--set dotted.key=value ...]
                                [--format table|json]
    python -m asymlib.runs train KEY_OR_NAME [...] --profile P [--output DIR] [--set ...] [--with-deps]
    python -m asymlib.runs status --output DIR [--format table|json]
    python -m asymlib.runs launch --profile P --executor slurm|local|inline [--runs KEY ...] [--only 02]
                                  [--set ...] [--dry-run] [--partition P] [--account A] [--time MIN]
                                  [--gpus-per-run N] [--cpus-per-run N] [--mem-gb G] [--constraint C]
                                  [--sbatch KEY=VALUE ...] [--cluster-config FILE.yaml] [--gpus 0,1,2,3]
    python -m asymlib.runs watch --output DIR [--interval S] [--once]

``plan`` lists every run of the profile's graph in dependency order with its key, kind, dependencies, status
in the output folder, iterations and estimated GPU-hours (offline, nothing is built). ``train`` trains runs
(resuming from their checkpoints) once their dependencies are finished, or says which are missing
(``--with-deps`` trains those first); it works under ``torchrun`` (DDP). ``status`` is the index of the runs
found in an output folder, whatever declared them. ``launch`` spreads unfinished runs over a Slurm cluster
(one job per run, ``afterok`` dependencies, requeue from checkpoints) or the GPUs of this machine
(:mod:`asymlib.pipeline.dispatch`); ``watch`` shows where the launched runs stand.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import pandas as pd

from ..config import get_profile, list_profiles, load_overrides, parse_overrides
from ..errors import AsymlibError

__all__ = ["main"]


def _default_output(profile: str) -> Path:
    from ..study import REPO_ROOT

    return REPO_ROOT / "study_output" / profile


def _print_table(df: pd.DataFrame, columns: list[str]) -> None:
    if df.empty:
        print("(no runs)")
        return
    shown = df[columns].copy()
    for col in ("deps", "notebooks", "roles"):
        if col in shown:
            shown[col] = shown[col].map(lambda v: ",".join(v) if isinstance(v, list) else v)
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 60, "display.width", 250):
        print(shown.to_string(index=False))


def _json_rows(df: pd.DataFrame) -> str:
    rows = json.loads(df.to_json(orient="records"))
    return json.dumps(rows, indent=2)


def _overrides(args: argparse.Namespace) -> dict:
    """``--config`` then ``--set`` (the latter wins)."""
    return {**(load_overrides(args.config) if args.config else {}), **parse_overrides(args.set)}


def _cmd_plan(args: argparse.Namespace) -> int:
    from .status import plan

    output = args.output or _default_output(args.profile)
    df = plan(args.profile, output, only=args.only, overrides=_overrides(args))
    if args.format == "json":
        print(_json_rows(df))
        return 0
    df = df.assign(gpu_hours=df["gpu_hours"].round(2), step=df["step"].map(lambda s: "" if pd.isna(s) else int(s)))
    _print_table(df, ["key", "kind", "notebooks", "deps", "status", "step", "iterations", "gpu_hours"])
    counts = df["status"].value_counts().to_dict()
    print(f"\n{len(df)} runs of the {df.attrs['profile']} profile in {output}: "
          + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f"; about {df['gpu_hours'].sum():.1f} GPU-hours left ({df.attrs['cost_source']})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .status import run_index

    df = run_index(args.output)
    if args.format == "json":
        print(_json_rows(df))
        return 0
    df = df.assign(step=df["step"].map(lambda s: "" if pd.isna(s) else int(s)))
    _print_table(df, ["key", "kind", "status", "step", "reason"])
    print(f"\n{len(df)} runs in {args.output}: "
          + ", ".join(f"{n} {s}" for s, n in df["status"].value_counts().to_dict().items()))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ..sr.trainer import init_distributed
    from .execute import StudyContext, ensure, train_command

    info = init_distributed()
    profile = get_profile(args.profile, **_overrides(args))
    output = args.output or _default_output(args.profile)
    ctx = StudyContext(profile, output, progress=info.is_main, log=print if info.is_main else None)
    specs = [ctx.graph.get(k) for k in args.runs]
    if not args.with_deps:
        missing = sorted({d for s in specs for d in s.deps if not ctx.finished(d)} - {s.key for s in specs})
        if missing:
            print(f"[runs] dependencies not finished: {', '.join(missing)}\n"
                  f"[runs] train them first: {train_command(ctx, missing)} (or add --with-deps)", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    order = ctx.graph.closure([s.key for s in specs]) if args.with_deps else specs
    bad = 0
    for i, spec in enumerate(order, 1):
        run = ensure(ctx, spec)
        st = run.status or {}
        bad += st.get("status") != "finished"
        if info.is_main:
            elapsed = time.perf_counter() - t0
            eta = elapsed / i * (len(order) - i)
            print(f"[runs] {i}/{len(order)} {spec.key}: {st.get('status')} ({elapsed:.0f} s elapsed, "
                  f"ETA {eta:.0f} s)", flush=True)
    if info.enabled:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 1 if bad else 0


def _cmd_launch(args: argparse.Namespace) -> int:
    from .dispatch import ClusterOptions, launch_inline, launch_local, launch_slurm, launch_specs
    from .execute import StudyContext

    overrides = _overrides(args)
    profile = get_profile(args.profile, **overrides)
    output = args.output or _default_output(args.profile)
    extra = parse_overrides(args.sbatch)
    changes = {"partition": args.partition, "account": args.account, "constraint": args.constraint,
               "time_min": args.time, "gpus_per_run": args.gpus_per_run, "cpus_per_run": args.cpus_per_run,
               "mem_gb": args.mem_gb}
    if args.cluster_config:
        opts = ClusterOptions.from_file(args.cluster_config, **changes)
    else:
        opts = ClusterOptions(**{k: v for k, v in changes.items() if v is not None})
    if extra:
        opts = dataclasses.replace(opts, extra={**opts.extra, **{k: str(v) for k, v in extra.items()}})
    ctx = StudyContext(profile, output, progress=False)
    specs = launch_specs(ctx, args.runs, args.only)
    print(f"[launch] {len(specs)} unfinished run(s) of the {profile.name} profile -> {args.executor}"
          f"{' (dry run)' if args.dry_run else ''}; output {output}")
    if not args.dry_run:
        Path(output).mkdir(parents=True, exist_ok=True)
    if args.executor == "slurm":
        launch_slurm(ctx, specs, opts, overrides, dry_run=args.dry_run)
        if not args.dry_run:
            print(f"[launch] watch with: python -m asymlib.runs watch --output {output}")
        return 0
    if args.dry_run:
        for s in specs:
            print(f"{s.kind}/{s.key} after {','.join(s.deps) or '-'}")
        return 0
    if args.executor == "local":
        gpus = [int(g) for g in args.gpus.split(",") if g.strip()] if args.gpus else _visible_gpus()
        if not gpus:
            raise SystemExit("[launch] no GPU found; give --gpus (ids, or slot numbers with --gpus-per-run 0)")
        result = launch_local(ctx, specs, gpus, opts, overrides)
    else:
        result = launch_inline(ctx, specs)
    bad = {k: v for k, v in result.items() if v != "finished"}
    print(f"[launch] {len(result) - len(bad)} finished" + (f", not finished: {bad}" if bad else ""))
    return 1 if bad else 0


def _visible_gpus() -> list[int]:
    import torch

    return list(range(torch.cuda.device_count()))


def _cmd_watch(args: argparse.Namespace) -> int:
    from .dispatch import watch_table

    while True:
        df = watch_table(args.output)
        if not args.once:
            print("\033[2J\033[H", end="")
        print(time.strftime("%Y-%m-%d %H:%M:%S"), f"{args.output}")
        df = df.assign(step=df["step"].map(lambda s: "" if pd.isna(s) else int(s)),
                       eta_s=df["eta_s"].map(lambda s: "" if pd.isna(s) else int(s)))
        _print_table(df, ["key", "executor", "job", "gpus", "state", "step", "iterations", "eta_s", "note"])
        counts = df["state"].value_counts().to_dict()
        print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items()))
        if args.once or (len(df) and df["state"].isin(["finished", "collapsed", "failed"]).all()):
            return 0
        time.sleep(args.interval)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asymlib.runs", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output", type=Path, default=None, help="study output folder (default study_output/<profile>)")
    graph = argparse.ArgumentParser(add_help=False)
    graph.add_argument("--profile", default="smoke", choices=list_profiles())
    graph.add_argument("--config", type=Path, default=None,
                       help="YAML file of profile overrides (nested or dotted keys); --set wins over it")
    graph.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="dotted profile override, e.g. sr.stage2.iterations=8 (repeatable)")
    p = sub.add_parser("plan", parents=[common, graph], help="every run of the graph with its status and cost")
    p.add_argument("--only", type=lambda s: [o.strip() for o in s.split(",") if o.strip()], default=None,
                   help="notebook prefixes, e.g. 02 or 01,02 (their runs and dependencies)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    t = sub.add_parser("train", parents=[common, graph], help="train runs (resuming) whose dependencies are finished")
    t.add_argument("runs", nargs="+", metavar="KEY_OR_NAME")
    t.add_argument("--with-deps", action="store_true", help="train unfinished dependencies first")
    s = sub.add_parser("status", help="the runs found in an output folder")
    s.add_argument("--output", type=Path, required=True)
    s.add_argument("--format", choices=["table", "json"], default="table")
    la = sub.add_parser("launch", parents=[common, graph], help="spread unfinished runs over Slurm or local GPUs")
    la.add_argument("--executor", choices=["slurm", "local", "inline"], required=True)
    la.add_argument("--runs", nargs="+", default=None, metavar="KEY_OR_NAME",
                    help="these runs and their unfinished dependencies (default: the notebooks of --only, or all)")
    la.add_argument("--only", type=lambda s: [o.strip() for o in s.split(",") if o.strip()], default=None)
    la.add_argument("--dry-run", action="store_true", help="print the jobs and their dependencies, submit nothing")
    la.add_argument("--partition")
    la.add_argument("--account")
    la.add_argument("--constraint")
    la.add_argument("--time", type=int, help="time limit per job in minutes (default: from the plan's estimate)")
    la.add_argument("--gpus-per-run", type=int)
    la.add_argument("--cpus-per-run", type=int)
    la.add_argument("--mem-gb", type=int)
    la.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE", help="extra sbatch option")
    la.add_argument("--cluster-config", type=Path, help="YAML file of these options")
    la.add_argument("--gpus", help="local executor: GPU ids to use, e.g. 0,1,2,3 (default: every visible GPU)")
    w = sub.add_parser("watch", help="live table of the launched runs")
    w.add_argument("--output", type=Path, required=True)
    w.add_argument("--interval", type=float, default=10.0)
    w.add_argument("--once", action="store_true")
    args = ap.parse_args(argv)
    try:
        return {"plan": _cmd_plan, "train": _cmd_train, "status": _cmd_status, "launch": _cmd_launch,
                "watch": _cmd_watch}[args.command](args)
    except AsymlibError as exc:
        print(f"[runs] error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
