"""The smoke profile: the whole study on a 2-core CPU in minutes (a rehearsal of the paper profile).

Embedded corpus (images shipped by installed packages), synthetic KADID-style distortions x 5 levels as IQA
labels, RANDOM backbone weights, the small SwinIR preset, 64-px crops and a few iterations per run. Its
numbers check the pipeline; they are not comparable to the paper's.
"""
from __future__ import annotations

from ..config import (DiscriminatorStudyConfig, FiguresConfig, GanInitConfig, MetricStudyConfig, MetricTrainConfig,
                      Profile)
from ..iqa.nr import NR_TRAIN_PRESETS
from ..sr.config import PAPER_EVALUATORS, CalibrationConfig, SRDataConfig, SRStudyConfig, SRTrainConfig

_SR_TRAIN = SRTrainConfig(
    iterations=4, batch_size=2, hr_crop=64, milestones=(3,), checkpoint_every=1000, log_every=1, sample_every=4,
    num_workers=0, collapse_patience=5, keep_checkpoint=False,  # finished runs keep results, not optimizer states
    ema_decay=0.8,  # a 0.999 average of a few steps would still be the initialization
)

PROFILE = Profile(
    name="smoke",
    weights="random",
    description="CPU smoke run: embedded corpus, synthetic distortion levels (not MOS), RANDOM backbone "
                "weights, 64-px crops, short schedules. Not comparable to the paper's numbers.",
    metric_study=MetricStudyConfig(
        train=MetricTrainConfig(iterations=300, batch_size=32, lr=2e-3, lr_halve_every=100, log_every=25),
        train_set="synthetic",
        eval_sets=("synthetic",),
        eval_batch_size=32,
        n_bootstrap=1000,
    ),
    sr=SRStudyConfig(
        sr_preset="small",
        # Stage 1 must beat bicubic upsampling (PSNR on the validation crops) or a broken data path would pass
        # unnoticed: from SwinIR's own initialization that takes thousands of steps; starting as nearest-
        # neighbour upsampling, 1200 steps of L1 (about 2.5 min on 2 cores) beat it by 0.2-0.6 dB per image.
        sr_init="nearest",
        stage1=_SR_TRAIN.replace(iterations=1200, lr=5e-4, milestones=(600, 900), lambda_rec=1.0, lambda_per=0.0,
                                 lambda_adv=0.0, sample_every=1200, log_every=25, ema_decay=0.99),
        stage2=_SR_TRAIN,
        metrics=("vgg16_r", "vgg16", "swin_t"),
        evaluators=PAPER_EVALUATORS + ("piqe", "psnr", "ssim"),
        data=SRDataConfig(source="embedded", train="astronaut,chelsea,coffee,rocket",
                          val="motorcycle_left,hubble_deep_field", val_crop=96, tile=None, sample_images=1),
        calibration=CalibrationConfig(dataset="synthetic", max_images=None, crop=64),
        eval_batch_size=4,
    ),
    discriminators=DiscriminatorStudyConfig(
        backbones=("vgg16", "resnet50", "dinov2_vits14"),
        sweep_lambda_adv=(1e-3, 2e-3, 5e-3, 1e-2, 5e-2),
        seeds=1,
    ),
    gan_init=GanInitConfig(
        backbones=("vgg16", "resnet50", "dinov2_vits14"),
        nr_datasets=("synthetic",),
        nr_train=NR_TRAIN_PRESETS["smoke"],
        n_bootstrap=200,
        require_imagenet=False,
    ),
    figures=FiguresConfig(
        n_bootstrap=1000,
        recovery_size=64, recovery_steps=30,
        texture_metrics=("vgg16", "dinov2_vits14"), texture_size=64, texture_steps=30,
        featuremap_backbones=("vgg16", "dinov2_vits14"), featuremap_size=112,
        # from scratch, 60 adversarial steps against a random-weight discriminator end in one flat colour or
        # off-colour blobs; after 200 L1 steps (about 3 s, as SR's stage 2 starts from stage 1) they reconstruct
        ae_warmup_steps=200,
        ae_preset="tiny", ae_steps=60, ae_lr=1e-3, ae_batch=2, ae_crop=64, ae_images=("astronaut", "chelsea"),
        widget_images=4,
    ),
)
