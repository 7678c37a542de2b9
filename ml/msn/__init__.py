"""Masked Siamese Networks (MSN) pretraining of a Vision Transformer, through lightly.

MSN [Assran et al., 2022] learns image embeddings from unlabeled images. Each image is
augmented into one *target* view, ``anchor_views`` random *anchor* views of the same size
and ``focal_views`` small crops. The target view goes through an EMA copy of the network;
the anchor views go, with a random ``mask_ratio`` of their patch tokens dropped, through
the trained network. Both outputs are softly assigned to learnable prototypes, and the
anchor assignments are trained to match the sharpened target assignments, with a
mean-entropy (or, with ``loss="pmsn"``, power-law) regulariser that spreads the pool
over the prototypes.

Three deliberate departures from lightly's own MSN example:

- the loss gets the prototypes *parameter* (``self.prototypes.weight``), not ``.data``,
  so the prototypes receive gradients and learn;
- the token mask is drawn over ``backbone.sequence_length`` tokens (class token plus
  every patch; index 0, the class token, is always kept), so every patch, the last one
  included, can be kept;
- the EMA momentum ramps linearly from ``ema_base`` (0.996) to 1.0 over the run.

As in the official implementation (facebookresearch/msn), only the full-size anchor
views are token-masked; the focal views are small crops and are already a form of
masking.

Randomness never touches the global generators' visible state: weights are initialised
under a forked RNG, data order and augmentations are pure functions of
``(config.seed, epoch, image index)``, and token masks come from a dedicated generator
whose state is checkpointed. A run is therefore repeatable on CPU for a given seed and
image list, whatever ``num_workers`` is, and a resumed run continues exactly as the
uninterrupted run would have.

Modules: ``config`` (:class:`MSNConfig`), ``model`` (the network, loss and
schedules), ``data`` (views and batches), ``train`` (:func:`pretrain`) and ``checkpoint``
(checkpoints and the backbone file).
"""

from ml.msn.checkpoint import (
    BACKBONE_FILENAME,
    BACKBONE_FORMAT,
    CHECKPOINT_FILENAME,
    CHECKPOINT_FORMAT,
    load_backbone,
    load_torch_file,
    save_backbone,
)
from ml.msn.config import MSNConfig
from ml.msn.data import MultiViewDataset, StepBatchSampler
from ml.msn.model import (
    MSN,
    build_msn,
    check_backbone_fits,
    ema_momentum,
    headless_vit,
    make_criterion,
    make_optimizer,
    msn_loss,
    random_keep_indices,
    schedule_values,
    vit_architecture,
)
from ml.msn.train import PROBE_STEPS, BackboneInit, PretrainResult, ProgressCallback, pretrain

__all__ = [
    "BACKBONE_FILENAME",
    "BACKBONE_FORMAT",
    "BackboneInit",
    "CHECKPOINT_FILENAME",
    "CHECKPOINT_FORMAT",
    "MSN",
    "MSNConfig",
    "MultiViewDataset",
    "PROBE_STEPS",
    "PretrainResult",
    "ProgressCallback",
    "StepBatchSampler",
    "build_msn",
    "check_backbone_fits",
    "ema_momentum",
    "headless_vit",
    "load_backbone",
    "load_torch_file",
    "make_criterion",
    "make_optimizer",
    "msn_loss",
    "pretrain",
    "random_keep_indices",
    "save_backbone",
    "schedule_values",
    "vit_architecture",
]
