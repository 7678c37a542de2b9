"""Training data: images decoded to RGB, augmented into MSN's views, in step-sized batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from lightly.transforms import MSNTransform
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from ml.images import ImageInput, describe_item, open_rgb
from ml.msn.config import _SEED_ORDER, _SEED_VIEWS, MSNConfig, _derived_seed


def _unwrap_item(item: Any) -> Any:
    """Dataset items may be ``(image, target)`` pairs; returns the image part."""
    return item[0] if isinstance(item, tuple | list) else item


class MultiViewDataset(Dataset):
    """MSN views of a pool of images, indexed by ``(epoch, image_index)``.

    Each item is a list ``[target, anchor_1..A, focal_1..F]`` of float tensors of shape
    (3, image_size, image_size) or (3, focal_size, focal_size). The augmentation of an
    item is a pure function of ``(config.seed, epoch, image_index)``: it runs under a
    forked torch RNG and a swapped numpy RNG, so it neither depends on nor changes the
    process's global random state.
    """

    def __init__(self, images: Sequence[ImageInput] | Dataset, config: MSNConfig) -> None:
        self.images = images
        self.seed = config.seed
        self.transform = MSNTransform(
            random_size=config.image_size,
            focal_size=config.focal_size,
            random_views=1 + config.anchor_views,
            focal_views=config.focal_views,
            random_crop_scale=config.random_crop_scale,
            focal_crop_scale=config.focal_crop_scale,
            cj_strength=config.color_jitter,
        )

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> list[Tensor]:
        epoch, index = key
        item = _unwrap_item(self.images[index])
        image = open_rgb(item, label=describe_item(item, index))
        torch_seed, numpy_seed = np.random.SeedSequence([self.seed, _SEED_VIEWS, epoch, index]).generate_state(2)
        numpy_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch_seed))
                np.random.seed(int(numpy_seed))
                return self.transform(image)
        finally:
            np.random.set_state(numpy_state)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(epoch, index)`` keys, starting at global step ``start_step``.

    Every epoch is a permutation of the pool drawn from ``(seed, epoch)``; the last
    incomplete batch of an epoch is dropped, so step ``s`` always holds the same images.
    """

    def __init__(self, n_images: int, batch_size: int, seed: int, start_step: int = 0) -> None:
        self.n_images = n_images
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step

    @property
    def steps_per_epoch(self) -> int:
        return self.n_images // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, first_batch = divmod(self.start_step, self.steps_per_epoch)
        while True:
            generator = torch.Generator().manual_seed(_derived_seed(self.seed, _SEED_ORDER, epoch))
            order = torch.randperm(self.n_images, generator=generator).tolist()
            for batch in range(first_batch, self.steps_per_epoch):
                start = batch * self.batch_size
                yield [(epoch, i) for i in order[start : start + self.batch_size]]
            epoch, first_batch = epoch + 1, 0
