"""asymlib.discriminators: GAN discriminators (random backbone + vanilla or patch head).

``create_discriminator(backbone, head)`` is the entry point; see :mod:`.factory` and :mod:`.heads`.
"""
from .esrgan import ESRGAN_VARIANTS, ESRGANVGGBody, ESRGANVGGFeatures
from .factory import (
    Discriminator,
    create_discriminator,
    list_discriminator_backbones,
    read_backbone_export,
    register_discriminator_backbone,
)
from .heads import (
    HEADS,
    PATCH_MAX_REDUCTION,
    STAGE_RULES,
    FlattenLinearHead,
    PatchHead,
    VanillaHead,
    list_heads,
    register_head,
    stage_by_rule,
)

__all__ = [
    "ESRGAN_VARIANTS",
    "HEADS",
    "PATCH_MAX_REDUCTION",
    "STAGE_RULES",
    "Discriminator",
    "ESRGANVGGBody",
    "ESRGANVGGFeatures",
    "FlattenLinearHead",
    "PatchHead",
    "VanillaHead",
    "create_discriminator",
    "list_discriminator_backbones",
    "list_heads",
    "read_backbone_export",
    "register_discriminator_backbone",
    "register_head",
    "stage_by_rule",
]
