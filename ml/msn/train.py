"""The pretraining loop: :func:`pretrain`, resumable and bounded by steps, epochs or minutes."""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from lightly.loss import MSNLoss
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.vision_transformer import VisionTransformer

from ml.msn.checkpoint import (
    BACKBONE_FILENAME,
    CHECKPOINT_FILENAME,
    CHECKPOINT_FORMAT,
    _atomic_save,
    load_torch_file,
    save_backbone,
)
from ml.msn.config import _SEED_MASK, MSNConfig, _derived_seed
from ml.msn.data import ImageInput, MultiViewDataset, StepBatchSampler
from ml.msn.model import (
    MSN,
    build_msn,
    check_backbone_fits,
    make_criterion,
    make_optimizer,
    msn_loss,
    schedule_values,
)

ProgressCallback = Callable[[int, int | None, float], None]
"""``progress(steps_done, total_steps, loss)``; ``total_steps`` is None while unknown."""


PROBE_STEPS = 5
"""Steps timed to size the schedule when only ``max_minutes`` bounds a run."""


@dataclass
class PretrainResult:
    """Outcome of :func:`pretrain`.

    ``loss_curve`` holds ``(step, loss)`` for every step of the run so far (resumed
    steps included), ``step`` counting from 1. ``seconds`` is this call's wall time.
    """

    backbone_path: Path
    checkpoint_path: Path
    loss_curve: list[tuple[int, float]]
    steps: int
    total_steps: int
    seconds: float
    device: str
    resumed_from: int
    config: MSNConfig
    init_backbone: str | None = None
    """Where the backbones' initial weights came from (see ``pretrain``), else None."""


BackboneInit = str | os.PathLike[str] | VisionTransformer
"""A ViT to start from: a file :func:`ml.embed.load_backbone_file` reads, or a model."""


def pretrain(
    images: Sequence[ImageInput] | Dataset,
    *,
    config: MSNConfig,
    out_dir: str | os.PathLike[str],
    max_steps: int | None = None,
    max_minutes: float | None = None,
    epochs: int | None = None,
    checkpoint_every: int = 100,
    resume: bool = True,
    progress: ProgressCallback | None = None,
    device: str | torch.device | None = None,
    num_workers: int | None = None,
    init_backbone: BackboneInit | None = None,
) -> PretrainResult:
    """Pretrains an MSN backbone on ``images`` and writes it to ``out_dir``.

    Args:
        images: file paths, encoded bytes or PIL images, or a torch Dataset whose items
            are one of those or ``(image, target)`` pairs.
        config: model and optimisation settings; ``config.seed`` fixes initial weights,
            data order, augmentations and masks.
        out_dir: receives ``checkpoint.pt`` (full training state, written atomically
            every ``checkpoint_every`` steps and at the end) and ``backbone.pt`` (the
            target backbone for :func:`load_backbone`).
        max_steps, epochs: length of the schedule; with both, the smaller wins.
        max_minutes: wall-time budget of this call; the run stops at the last step
            boundary that fits. When it is the only bound, the schedule (cosine lr,
            weight decay, EMA ramp) is sized from the speed of the first
            ``PROBE_STEPS`` steps: those run at step-0 values (``start_lr``,
            ``ema_base``); the steps after the first (which carries start-up costs) are
            timed and ``total = steps_done + remaining_seconds / seconds_per_step``.
        resume: continue from ``out_dir/checkpoint.pt`` when one exists. The checkpoint
            must come from the same config and pool size; its schedule length is kept
            unless ``max_steps``/``epochs`` set a new one.
        progress: called after every step as ``progress(step, total_steps, loss)``.
        device: defaults to CUDA when available (fp16 autocast with a GradScaler),
            else CPU in fp32.
        num_workers: DataLoader worker processes; default ``min(2, cpu_count)``, or 0
            inside a daemonic process, which may not start children.
        init_backbone: start the anchor and target backbones from these weights
            instead of ``config.seed``'s random ones (the projection heads and
            prototypes stay random): a torchvision ``VisionTransformer`` or a file of
            any layout :func:`ml.embed.load_backbone_file` reads (Veil backbone or
            checkpoint, torchvision ViT state dict, official MSN checkpoint; the last
            two are read with ``config.num_heads`` heads). Its architecture must equal
            the config's (see :func:`check_backbone_fits`); the config is never
            changed to fit. Recorded as ``init_backbone`` in the result, the checkpoint
            and ``backbone.pt``. A resumed run continues from its checkpoint, which
            must have been started from the same ``init_backbone``.

    Raises:
        ValueError: no bound given, fewer than 2 images, an undecodable image (named),
            an ``init_backbone`` that cannot be read or does not fit the config (named,
            with the mismatched fields), or a checkpoint in ``out_dir`` that does not
            match this run.
        FloatingPointError: the loss stopped being finite (the last checkpoint stays).
    """
    if max_steps is None and epochs is None and max_minutes is None:
        raise ValueError("pretrain needs max_steps, epochs or max_minutes")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    started = time.perf_counter()
    run_device = _resolve_device(device)
    amp = run_device.type == "cuda"
    dataset = MultiViewDataset(images, config)
    n_images = len(dataset)
    if n_images < 2:
        raise ValueError(f"MSN pretraining needs at least 2 images, got {n_images}")
    batch_size = min(config.batch_size, n_images)
    planned_steps = _planned_steps(max_steps, epochs, n_images // batch_size)
    init_name, init_vit = _initial_backbone(init_backbone, config)

    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_path / CHECKPOINT_FILENAME
    backbone_path = out_path / BACKBONE_FILENAME

    model = build_msn(config)
    if init_vit is not None:
        model.start_from(init_vit)
    model = model.to(run_device)
    model.train()
    run = _Run(
        config=config,
        n_images=n_images,
        model=model,
        optimizer=make_optimizer(model, config),
        scaler=torch.amp.GradScaler(run_device.type, enabled=amp),
        mask_generator=torch.Generator().manual_seed(_derived_seed(config.seed, _SEED_MASK)),
        state=_RunState(total_steps=planned_steps, momentum=config.ema_base),
        init_backbone=init_name,
    )
    if resume and checkpoint_path.exists():
        run.restore(checkpoint_path)
        if planned_steps is not None:
            run.state.total_steps = planned_steps
    state = run.state
    resumed_from = state.step

    loader = DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(n_images, batch_size, config.seed, state.step),
        num_workers=_resolve_workers(num_workers),
        pin_memory=amp,
        generator=torch.Generator(),
    )
    criterion = make_criterion(config)
    budget = None if max_minutes is None else max_minutes * 60.0
    timer = _StepTimer()
    last_saved = state.step
    batches = iter(loader)
    while state.total_steps is None or state.step < state.total_steps:
        if budget is not None and timer.would_exceed(time.perf_counter() - started, budget):
            break
        views = [v.to(run_device, non_blocking=True) for v in next(batches)]
        loss_value = run.step(criterion, views, amp=amp)
        timer.lap()
        if state.total_steps is None and budget is not None and timer.laps == PROBE_STEPS:
            remaining = budget - (time.perf_counter() - started)
            state.total_steps = state.step + int(remaining / max(timer.seconds_per_step(), 1e-9))
        if progress is not None:
            progress(state.step, state.total_steps, loss_value)
        if state.step % checkpoint_every == 0:
            run.save(checkpoint_path)
            last_saved = state.step

    if state.total_steps is None:
        state.total_steps = state.step
    if state.step != last_saved or not checkpoint_path.exists():
        run.save(checkpoint_path)
    save_backbone(model.target_backbone.vit, config, backbone_path, step=state.step, init_backbone=init_name)
    return PretrainResult(
        backbone_path=backbone_path,
        checkpoint_path=checkpoint_path,
        loss_curve=list(state.loss_curve),
        steps=state.step,
        total_steps=state.total_steps,
        seconds=time.perf_counter() - started,
        device=str(run_device),
        resumed_from=resumed_from,
        config=config,
        init_backbone=init_name,
    )


@dataclass
class _RunState:
    """Training progress that is checkpointed besides the module and optimiser states."""

    step: int = 0
    total_steps: int | None = None
    momentum: float = 0.996
    loss_curve: list[tuple[int, float]] = field(default_factory=list)


class _StepTimer:
    """Times the steps of one call; the first (worker start-up, warm-up) is not averaged."""

    def __init__(self) -> None:
        self.laps = 0
        self._start = time.perf_counter()
        self._first_end = self._start
        self._last = self._start

    def lap(self) -> None:
        self._last = time.perf_counter()
        self.laps += 1
        if self.laps == 1:
            self._first_end = self._last

    def seconds_per_step(self) -> float:
        if self.laps == 0:
            return 0.0
        if self.laps == 1:
            return self._first_end - self._start
        return (self._last - self._first_end) / (self.laps - 1)

    def would_exceed(self, elapsed: float, budget: float) -> bool:
        """Whether one more step, at the measured speed, would overrun ``budget``."""
        return elapsed + self.seconds_per_step() > budget


def _initial_backbone(source: BackboneInit | None, config: MSNConfig) -> tuple[str | None, VisionTransformer | None]:
    """``(name, vit)`` of ``pretrain``'s ``init_backbone``, checked against ``config``."""
    if source is None:
        return None, None
    if isinstance(source, VisionTransformer):
        name, vit = f"<{type(source).__name__} object>", source
    elif isinstance(source, str | os.PathLike):
        from ml.embed import load_backbone_file

        name = os.fspath(source)
        vit = load_backbone_file(source, num_heads=config.num_heads)
    else:
        raise TypeError(f"init_backbone must be a path or a VisionTransformer, got {type(source).__name__}")
    check_backbone_fits(vit, config, name=name)
    return name, vit


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_workers(num_workers: int | None) -> int:
    if num_workers is not None:
        return num_workers
    if multiprocessing.current_process().daemon:
        return 0
    return min(2, os.cpu_count() or 1)


def _planned_steps(max_steps: int | None, epochs: int | None, steps_per_epoch: int) -> int | None:
    bounds = [b for b in (max_steps, None if epochs is None else epochs * steps_per_epoch) if b is not None]
    return min(bounds) if bounds else None


@dataclass
class _Run:
    """Everything a training step changes, with checkpoint save and restore."""

    config: MSNConfig
    n_images: int
    model: MSN
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    mask_generator: torch.Generator
    state: _RunState
    init_backbone: str | None = None

    def step(self, criterion: MSNLoss, views: Sequence[Tensor], *, amp: bool) -> float:
        """One optimisation step and EMA update on ``views``; returns the loss."""
        state, config = self.state, self.config
        lr, wd, momentum = schedule_values(state.step, state.total_steps, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if group["scheduled_wd"]:
                group["weight_decay"] = wd
        self.optimizer.zero_grad(set_to_none=True)
        loss = msn_loss(self.model, criterion, views, self.mask_generator, autocast=amp)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"MSN loss is {loss_value} at step {state.step + 1}")
        self.scaler.scale(loss).backward()
        if config.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            anchor_params = [p for m in self.model.trainable_modules() for p in m.parameters() if p.requires_grad]
            nn.utils.clip_grad_norm_(anchor_params, config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.model.update_target(momentum)
        state.step += 1
        state.momentum = momentum
        state.loss_curve.append((state.step, loss_value))
        return loss_value

    def save(self, path: Path) -> None:
        _atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "version": 1,
                "config": self.config.to_dict(),
                "n_images": self.n_images,
                "step": self.state.step,
                "total_steps": self.state.total_steps,
                "ema_momentum": self.state.momentum,
                "loss_curve": [[s, v] for s, v in self.state.loss_curve],
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "mask_rng": self.mask_generator.get_state(),
                "init_backbone": self.init_backbone,
            },
            path,
        )

    def restore(self, path: Path) -> None:
        data = load_torch_file(path)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a Veil MSN training checkpoint")
        if MSNConfig.from_dict(data["config"]) != self.config:
            raise ValueError(f"{path}: written with a different MSNConfig; use another out_dir")
        if data["n_images"] != self.n_images:
            raise ValueError(f"{path}: written for {data['n_images']} images, not {self.n_images}")
        if data.get("init_backbone") != self.init_backbone:
            raise ValueError(
                f"{path}: started from init_backbone {data.get('init_backbone')!r}, "
                f"not {self.init_backbone!r}; use another out_dir"
            )
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scaler.load_state_dict(data["scaler"])
        self.mask_generator.set_state(data["mask_rng"])
        self.state = _RunState(
            step=data["step"],
            total_steps=data["total_steps"],
            momentum=data["ema_momentum"],
            loss_curve=[(int(s), float(v)) for s, v in data["loss_curve"]],
        )
