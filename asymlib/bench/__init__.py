"""Benchmarks: ``python -m asymlib.bench [--quick] [--device cpu|cuda|auto] [--only dists,sr,...]``.

Every row is a median of repeated timings taken in this one process run, next to a *named baseline* timed
in the same run (variants are interleaved round by round, so a machine whose load changes affects both
alike); ``ratio_vs_baseline = baseline median / variant median`` (> 1: faster than the baseline).

Benchmarks (``--only`` picks some), one module each:

``dists`` (:mod:`.dists`)
    DISTS-style VGG-16 metric, forward + backward with respect to the distorted image (a loss), 256x256,
    batch 8: :class:`asymlib.metrics.DISTSMetric` against pyiqa's DISTS architecture holding *identical*
    weights (:func:`build_pyiqa_twin`); ``max_abs_diff`` is the largest difference of the distances (the
    notes add the gradients'). On CPU, and on CUDA when present (there also asymlib under bf16 autocast,
    which is faster but not equal-valued; its difference is shown).
``sr`` (:mod:`.sr_step`, rows ``sr_step``)
    One stage-2 training iteration of the SR generator (:func:`build_sr_step`: G update on Eq. 1 with L1 +
    DISTS + relativistic patch-discriminator loss, D update on real and fake halves, EMA), the optimized path
    (bf16 autocast and ``torch.compile`` on CUDA, channels-last, fused Adam) and the path ``train_sr`` takes
    (:func:`build_trainer_sr_step`) against the plain fp32 eager path of the same step function; also
    ``train_sr``'s stage 1 (L1) and stage 2 without discriminator, for the step costs. CUDA: SwinIR
    classical x4, batch 32, 64x64 LR crops (the paper's stage 2), with images/s, peak GPU memory and the
    projected hours of 400K iterations. CPU: the smoke preset (SwinIR small, batch 2, 16x16 LR) only.
``nr`` (:mod:`.nr`)
    Scoring throughput (images/s) of every no-reference evaluator of :mod:`asymlib.sr.evaluators` that is
    available here, a batch per call against one image per call; unavailable ones are listed as skipped.
``scaling`` (:mod:`.scaling`)
    asymlib's DISTS forward + backward against pyiqa's over a grid of image sizes and batch sizes, printed
    as a small table so that the growth of the cost is visible.
``metric_train`` (:mod:`.metric_train`)
    Training of a metric's alpha/beta: the one-off backbone pass per image pair and one alpha/beta step on
    cached terms, at the workload of the device's profile.
``nr_train`` (:mod:`.nr_train`)
    One NR-IQA training step (forward, loss, backward, Adam) per backbone of the device's profile.

Training workloads follow the device's study profile: ``paper`` on CUDA, ``smoke`` on CPU. Peak memory
(:mod:`.timing`): on CUDA ``torch.cuda.max_memory_allocated`` during a timed call minus the memory allocated
before it; on CPU the growth of the process's resident set during the first warm-up call, after
``malloc_trim``. Results are written atomically to ``<output>/bench.csv`` and ``<output>/bench.json`` (with
the device, torch version, date and git commit; :mod:`.report`). ``--write-step-costs [PATH]`` also writes
the seconds per training step of each kind of study run (``sr_stage1``, ``sr_stage2``, ``sr_stage2_adv``,
``metric_train``, ``nr_train``) measured by the ``sr``, ``metric_train`` and ``nr_train`` rows, for GPU-hour
estimates, to PATH (default ``<output>/step_costs.json``; its format: :mod:`asymlib.bench.report`).
``--quick`` finishes in under 5 minutes on 2 CPU cores; ``--profile`` also prints where the time of one DISTS
step goes (``torch.profiler``).
"""
from __future__ import annotations

from .cli import DEFAULT_OUTPUT, main, parse_args, settings_from_args
from .dists import bench_dists, build_pyiqa_twin, dists_step, seeded_vgg16_state_dict
from .inputs import distort, image_batch
from .metric_train import bench_metric_train
from .nr import bench_nr
from .nr_train import bench_nr_train, build_nr_train_step
from .report import (COLUMNS, STEP_COST_KINDS, STEP_COSTS_FORMAT, Row, format_table, rows_frame, step_costs,
                     write_results, write_step_costs)
from .runner import BENCHMARKS, run_benchmarks
from .scaling import bench_scaling, scaling_table
from .settings import Settings, profile_for
from .sr_step import (PAPER_ITERATIONS, SRStepSpec, bench_sr, build_sr_step, build_trainer_sr_step, sr_stage_specs,
                      sr_step_spec)
from .timing import MemoryProbe, Timing, measure, ratio

__all__ = ["BENCHMARKS", "COLUMNS", "DEFAULT_OUTPUT", "PAPER_ITERATIONS", "STEP_COSTS_FORMAT", "STEP_COST_KINDS",
           "MemoryProbe", "Row", "SRStepSpec", "Settings", "Timing", "bench_dists", "bench_metric_train", "bench_nr",
           "bench_nr_train", "bench_scaling", "bench_sr", "build_nr_train_step", "build_pyiqa_twin", "build_sr_step",
           "build_trainer_sr_step", "distort", "dists_step", "format_table", "image_batch", "main", "measure",
           "parse_args", "profile_for", "ratio", "rows_frame", "run_benchmarks", "scaling_table",
           "seeded_vgg16_state_dict", "settings_from_args", "sr_stage_specs", "sr_step_spec", "step_costs",
           "write_results", "write_step_costs"]
