"""MSN pretraining on tiny generated images (CPU, a few seconds in all)."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.models.vision_transformer import VisionTransformer

from ml.msn import (
    PROBE_STEPS,
    MSNConfig,
    MultiViewDataset,
    build_msn,
    ema_momentum,
    load_backbone,
    load_torch_file,
    make_criterion,
    make_optimizer,
    msn_loss,
    pretrain,
    random_keep_indices,
    schedule_values,
)

SMALL = MSNConfig.preset(
    "tiny",
    image_size=32,
    focal_size=16,
    num_layers=2,
    num_heads=2,
    hidden_dim=64,
    proj_hidden_dim=128,
    out_dim=64,
    n_prototypes=32,
    focal_views=2,
    batch_size=16,
    lr=1e-3,
    start_lr=1e-4,
    warmup_fraction=0.1,
)

COLOURS = [(220, 40, 40), (40, 200, 60), (60, 80, 230)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_images(n: int, size: int = 48, seed: int = 0) -> list[Image.Image]:
    """Three kinds of images: red discs, green squares, blue strokes on dark noise."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        kind = i % 3
        background = tuple(int(c) for c in rng.integers(0, 60, 3))
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x, y = (int(v) for v in rng.integers(0, size - 12, 2))
            r = int(rng.integers(6, 14))
            box = [x, y, x + r, y + r]
            if kind == 0:
                draw.ellipse(box, fill=COLOURS[kind])
            elif kind == 1:
                draw.rectangle(box, fill=COLOURS[kind])
            else:
                draw.line(box, fill=COLOURS[kind], width=3)
        images.append(image)
    return images


def one_batch(config: MSNConfig, n: int = 8) -> list[torch.Tensor]:
    dataset = MultiViewDataset(make_images(n), config)
    items = [dataset[(0, i)] for i in range(n)]
    return [torch.stack(view) for view in zip(*items, strict=True)]


def test_presets_and_dict_round_trip() -> None:
    tiny, vit_s = MSNConfig.preset("tiny"), MSNConfig.preset("vit-s16")
    assert (tiny.image_size, tiny.focal_size, tiny.patch_size) == (64, 32, 8)
    assert (tiny.num_layers, tiny.num_heads, tiny.hidden_dim, tiny.mlp_dim) == (4, 3, 192, 768)
    assert (tiny.anchor_views, tiny.focal_views, tiny.mask_ratio, tiny.batch_size) == (
        1,
        6,
        0.15,
        64,
    )
    assert (vit_s.image_size, vit_s.focal_size, vit_s.patch_size) == (224, 96, 16)
    assert (vit_s.num_layers, vit_s.num_heads, vit_s.hidden_dim) == (12, 6, 384)
    assert (vit_s.anchor_views, vit_s.focal_views, vit_s.n_prototypes, vit_s.out_dim) == (
        1,
        10,
        1024,
        256,
    )
    assert (vit_s.temperature, vit_s.sharpen_temperature, vit_s.ema_base) == (0.1, 0.25, 0.996)

    custom = MSNConfig.preset("tiny", loss="pmsn", pooling="mean", seed=7)
    restored = MSNConfig.from_dict(json.loads(json.dumps(custom.to_dict())))
    assert restored == custom

    with pytest.raises(ValueError, match="colour"):
        MSNConfig.from_dict({**custom.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        MSNConfig.preset("tiny", image_size=60)
    with pytest.raises(ValueError, match="unknown MSN preset"):
        MSNConfig.preset("vit-h14")


def test_vit_s16_preset_runs_paper_views() -> None:
    config = MSNConfig.preset("vit-s16", batch_size=2)
    model = build_msn(config)
    views = [torch.randn(2, 3, 224, 224)] * 2 + [torch.randn(2, 3, 96, 96)] * 10
    anchors, targets = model.forward_views(views, torch.Generator().manual_seed(0))
    assert anchors.shape == (2 * 11, 256)
    assert targets.shape == (2, 256)


def test_mask_keeps_class_token_and_can_keep_every_patch() -> None:
    model = build_msn(SMALL)
    sequence_length = model.anchor_backbone.sequence_length
    assert sequence_length == (32 // 8) ** 2 + 1

    keep = random_keep_indices(400, sequence_length, 0.15, torch.Generator().manual_seed(0))

    assert keep.shape == (400, 1 + int(16 * 0.85))
    assert (keep[:, 0] == 0).all()
    assert (keep[:, 1:] > 0).all()
    assert all(len(set(row.tolist())) == keep.shape[1] for row in keep)
    assert set(keep.unique().tolist()) == set(range(sequence_length))


def test_prototypes_receive_gradients_and_learn() -> None:
    model = build_msn(SMALL)
    optimizer = make_optimizer(model, SMALL)
    before = model.prototypes.weight.detach().clone()

    loss = msn_loss(model, make_criterion(SMALL), one_batch(SMALL), torch.Generator())
    loss.backward()
    grad = model.prototypes.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    optimizer.step()

    assert not torch.equal(model.prototypes.weight.detach(), before)


def test_ema_momentum_ramps_linearly_to_one() -> None:
    values = [ema_momentum(step, 101, 0.996) for step in range(101)]

    assert values[0] == pytest.approx(0.996)
    assert values[-1] == pytest.approx(1.0)
    assert np.allclose(np.diff(values), 0.004 / 100)
    assert schedule_values(100, 101, SMALL)[2] == pytest.approx(1.0)

    model = build_msn(SMALL)
    with torch.no_grad():
        model.anchor_head.layers[0].weight.add_(1.0)
    frozen = model.target_head.layers[0].weight.clone()
    model.update_target(1.0)
    assert torch.equal(model.target_head.layers[0].weight, frozen)
    model.update_target(0.0)
    assert torch.equal(model.target_head.layers[0].weight, model.anchor_head.layers[0].weight)


def test_pretraining_lowers_the_loss(tmp_path) -> None:
    result = pretrain(make_images(32), config=SMALL, out_dir=tmp_path, max_steps=30, num_workers=0)
    losses = np.array([loss for _, loss in result.loss_curve])

    assert result.steps == result.total_steps == 30
    assert [step for step, _ in result.loss_curve] == list(range(1, 31))
    assert losses[:6].mean() - losses[-6:].mean() > 0.15
    assert result.device == "cpu"

    checkpoint = load_torch_file(result.checkpoint_path)
    assert checkpoint["ema_momentum"] == pytest.approx(1.0)
    backbone = load_backbone(result.backbone_path)
    assert isinstance(backbone, VisionTransformer)
    target = checkpoint["model"]
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, target[f"target_backbone.vit.{key}"])
    assert load_backbone(result.checkpoint_path).state_dict().keys() == backbone.state_dict().keys()


def test_same_seed_same_curve_whatever_the_workers(tmp_path) -> None:
    images = make_images(20)
    runs = [
        pretrain(
            images,
            config=dataclasses.replace(SMALL, batch_size=8),
            out_dir=tmp_path / str(workers),
            max_steps=4,
            num_workers=workers,
        )
        for workers in (0, 0, 2)
    ]
    assert runs[0].loss_curve == runs[1].loss_curve == runs[2].loss_curve


def test_resume_after_crash_continues_like_an_uninterrupted_run(tmp_path) -> None:
    config = dataclasses.replace(SMALL, batch_size=8)
    images = make_images(20)
    uninterrupted = pretrain(images, config=config, out_dir=tmp_path / "a", max_steps=7, num_workers=0)

    class Crash(Exception):
        pass

    def crash_at_step_6(step: int, total: int | None, loss: float) -> None:
        if step == 6:
            raise Crash

    with pytest.raises(Crash):
        pretrain(
            images,
            config=config,
            out_dir=tmp_path / "b",
            max_steps=7,
            checkpoint_every=2,
            num_workers=0,
            progress=crash_at_step_6,
        )
    resumed = pretrain(
        images,
        config=config,
        out_dir=tmp_path / "b",
        max_steps=7,
        checkpoint_every=2,
        num_workers=0,
    )

    assert resumed.resumed_from == 4
    assert resumed.loss_curve == uninterrupted.loss_curve
    for a, b in zip(
        load_backbone(uninterrupted.backbone_path).state_dict().values(),
        load_backbone(resumed.backbone_path).state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)

    with pytest.raises(ValueError, match="different MSNConfig"):
        pretrain(
            images,
            config=dataclasses.replace(config, seed=1),
            out_dir=tmp_path / "b",
            max_steps=7,
            num_workers=0,
        )


def test_time_budget_sizes_the_schedule_and_stops_in_time(tmp_path) -> None:
    totals: list[int | None] = []
    budget_minutes = 0.04

    result = pretrain(
        make_images(32),
        config=SMALL,
        out_dir=tmp_path,
        max_minutes=budget_minutes,
        num_workers=0,
        progress=lambda step, total, loss: totals.append(total),
    )

    assert result.steps > PROBE_STEPS
    assert totals[: PROBE_STEPS - 1] == [None] * (PROBE_STEPS - 1)
    assert set(totals[PROBE_STEPS - 1 :]) == {result.total_steps}
    assert result.total_steps >= result.steps
    assert result.seconds < budget_minutes * 60 + 1.5


def test_bad_input_is_reported(tmp_path) -> None:
    with pytest.raises(ValueError, match="max_steps, epochs or max_minutes"):
        pretrain(make_images(4), config=SMALL, out_dir=tmp_path)
    with pytest.raises(ValueError, match="at least 2 images"):
        pretrain(make_images(1), config=SMALL, out_dir=tmp_path, max_steps=1)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    buffer = io.BytesIO()
    make_images(1)[0].save(buffer, format="PNG")
    with pytest.raises(ValueError, match="broken.jpg"):
        pretrain(
            [buffer.getvalue(), broken],
            config=SMALL,
            out_dir=tmp_path,
            max_steps=1,
            num_workers=0,
        )


def test_pretraining_can_start_from_a_vit_file(tmp_path) -> None:
    config = dataclasses.replace(SMALL, batch_size=8, ema_base=1.0)
    torch.manual_seed(3)
    source = VisionTransformer(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        mlp_dim=config.mlp_dim,
        num_classes=7,
    )
    path = tmp_path / "init.pth"
    torch.save(source.state_dict(), path)
    images = make_images(16)

    result = pretrain(
        images,
        config=config,
        out_dir=tmp_path / "a",
        max_steps=2,
        num_workers=0,
        init_backbone=path,
    )
    scratch = pretrain(images, config=config, out_dir=tmp_path / "b", max_steps=2, num_workers=0)

    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("heads.")}
    target = load_backbone(result.backbone_path).state_dict()
    assert target.keys() == expected.keys()
    assert all(torch.equal(target[k], v) for k, v in expected.items())
    checkpoint = load_torch_file(result.checkpoint_path)
    anchor = checkpoint["model"]["anchor_backbone.vit.conv_proj.weight"]
    assert not torch.equal(anchor, expected["conv_proj.weight"])
    assert not torch.equal(
        load_backbone(scratch.backbone_path).state_dict()["conv_proj.weight"],
        expected["conv_proj.weight"],
    )
    assert result.init_backbone == str(path) and scratch.init_backbone is None
    assert checkpoint["init_backbone"] == str(path)
    assert load_torch_file(result.backbone_path)["init_backbone"] == str(path)
    assert result.loss_curve != scratch.loss_curve

    with pytest.raises(ValueError, match="started from init_backbone"):
        pretrain(images, config=config, out_dir=tmp_path / "a", max_steps=3, num_workers=0)


def test_a_vit_that_does_not_fit_the_config_is_refused(tmp_path) -> None:
    wide = VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=32, mlp_dim=128)
    path = tmp_path / "wide.pth"
    torch.save(wide.state_dict(), path)

    with pytest.raises(
        ValueError,
        match=r"wide\.pth: ViT does not fit MSN config 'tiny': num_layers 3 \(config 2\), "
        r"hidden_dim 32 \(config 64\), mlp_dim 128 \(config 256\)$",
    ):
        pretrain(make_images(4), config=SMALL, out_dir=tmp_path / "run", max_steps=1, init_backbone=path)
    with pytest.raises(ValueError, match=r"<VisionTransformer object>: .*hidden_dim"):
        pretrain(make_images(4), config=SMALL, out_dir=tmp_path / "run", max_steps=1, init_backbone=wide)
    assert not (tmp_path / "run").exists()
