"""Super-resolution: SwinIR models, MATLAB-compatible bicubic resizing, paired data, GAN losses, EMA."""
from .data import PairedSRDataset
from .ema import ModelEMA
from .losses import (generator_loss, relativistic_discriminator_loss, relativistic_discriminator_loss_fake,
                     relativistic_discriminator_loss_real, relativistic_generator_loss)
from .models import count_parameters, create_sr_model, list_sr_models, list_sr_presets
from .resize import imresize

__all__ = ["PairedSRDataset", "ModelEMA", "create_sr_model", "list_sr_models", "list_sr_presets", "count_parameters",
           "imresize", "generator_loss", "relativistic_generator_loss", "relativistic_discriminator_loss",
           "relativistic_discriminator_loss_real", "relativistic_discriminator_loss_fake"]
