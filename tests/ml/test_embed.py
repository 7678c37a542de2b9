"""Embeddings and backbone loading: Veil, torchvision and official MSN layouts."""

from __future__ import annotations

import io
import pickle
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from ml.embed import (
    backbone_features,
    default_num_heads,
    embed_images,
    eval_transform,
    load_backbone_file,
    load_msn_checkpoint,
    load_torchvision_vit,
)
from ml.msn import MSNConfig, headless_vit, save_backbone

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_vit(num_classes: int = 1000) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=96,
        num_classes=num_classes,
    ).eval()


def random_images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 32), (32, 48), (64, 64), (37, 51)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 4][::-1], 3), dtype=np.uint8)) for i in range(n)]


class DeiTAttention(nn.Module):
    """Attention of facebookresearch/msn ``src/deit.py``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class DeiTMLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DeiTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.norm1 = norm(dim)
        self.attn = DeiTAttention(dim, num_heads, qkv_bias)
        self.norm2 = norm(dim)
        self.mlp = DeiTMLP(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DeiTPatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)


class DeiT(nn.Module):
    """The msn repo's VisionTransformer, reduced to what a checkpoint holds, plus the
    3-layer projection head ``fc`` that MSN pretraining attaches."""

    def __init__(self, image_size: int, patch_size: int, dim: int, depth: int, heads: int, qkv_bias: bool):
        super().__init__()
        self.patch_embed = DeiTPatchEmbed(patch_size, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2 + 1, dim))
        self.blocks = nn.ModuleList(DeiTBlock(dim, heads, qkv_bias) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Sequential(nn.Linear(dim, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Linear(32, 16))
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.weight.normal_(1.0, 0.2)
                    module.bias.normal_(0.0, 0.2)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> final-norm tokens (B, 1 + patches, dim), as deit.py computes."""
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def save_msn_checkpoint(path, deit: DeiT) -> None:
    """Saves ``deit`` the way msn_train.py does: DDP-prefixed, among training state."""
    target = {f"module.{k}": v for k, v in deit.state_dict().items()}
    torch.save(
        {
            "encoder": target,
            "target_encoder": target,
            "prototypes": torch.randn(8, 16),
            "opt": {"state": {}, "param_groups": []},
            "epoch": 3,
            "loss": 4.2,
            "batch_size": 64,
            "world_size": 1,
            "lr": 1e-3,
            "temperature": 0.1,
        },
        path,
    )


def test_embeddings_are_unit_float32_and_deterministic(tmp_path) -> None:
    vit = small_vit()
    images: list = random_images(5)
    buffer = io.BytesIO()
    images[1].save(buffer, format="PNG")
    images[1] = buffer.getvalue()
    images[2].save(tmp_path / "two.jpg")
    images[2] = tmp_path / "two.jpg"
    seen: list[tuple[int, int]] = []

    first = embed_images(vit, images, image_size=32, batch_size=2, progress=lambda *a: seen.append(a))
    again = embed_images(vit, images, image_size=32, batch_size=64)

    assert first.dtype == np.float32 and first.shape == (5, 64)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert np.allclose(first, again, atol=1e-6)
    assert np.array_equal(first, embed_images(vit, images, image_size=32, batch_size=2))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert vit.training is False

    mean = embed_images(vit, images, image_size=48, pooling="mean")
    assert mean.shape == (5, 64)
    assert np.allclose(np.linalg.norm(mean, axis=1), 1.0, atol=1e-6)
    assert embed_images(vit, [], image_size=32).shape == (0, 64)


def test_eval_transform_resizes_shorter_side_and_center_crops() -> None:
    image = Image.new("RGB", (80, 40), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 40))
    tensor = eval_transform(32)(image)

    assert tensor.shape == (3, 32, 32)
    red = eval_transform(32)(Image.new("RGB", (32, 32), (255, 0, 0)))
    assert torch.allclose(tensor, red, atol=1e-6)


def test_unreadable_image_is_named(tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG nope")
    with pytest.raises(ValueError, match="broken.png"):
        embed_images(small_vit(), [random_images(1)[0], broken], image_size=32)


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_msn_layout_converts_to_an_equivalent_torchvision_vit(tmp_path, qkv_bias: bool) -> None:
    torch.manual_seed(1)
    deit = DeiT(image_size=32, patch_size=8, dim=192, depth=2, heads=3, qkv_bias=qkv_bias).eval()
    path = tmp_path / "msn-vit.pth.tar"
    save_msn_checkpoint(path, deit)
    images = torch.randn(4, 3, 32, 32)

    vit = load_msn_checkpoint(path)

    assert isinstance(vit, VisionTransformer)
    assert (vit.patch_size, vit.hidden_dim, len(vit.encoder.layers), vit.image_size) == (
        8,
        192,
        2,
        32,
    )
    with torch.no_grad():
        reference = deit.tokens(images)
        assert torch.allclose(backbone_features(vit, images), reference[:, 0], atol=1e-5)
        assert torch.allclose(backbone_features(vit, images, pooling="mean"), reference[:, 1:].mean(1), atol=1e-5)
        assert torch.allclose(vit(images), reference[:, 0], atol=1e-5)

    pil = random_images(3)
    batch = torch.stack([eval_transform(32)(image) for image in pil])
    with torch.no_grad():
        expected = F.normalize(deit.tokens(batch)[:, 0], dim=1).numpy()
    detected = load_backbone_file(path)
    assert np.allclose(embed_images(detected, pil, image_size=32), expected, atol=1e-5)


def test_torchvision_layout_is_inferred_and_loaded(tmp_path) -> None:
    reference = small_vit(num_classes=5)
    path = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), path)
    images = torch.randn(3, 3, 32, 32)

    vit = load_torchvision_vit(path, num_heads=4)

    assert (vit.patch_size, vit.hidden_dim, vit.mlp_dim, len(vit.encoder.layers)) == (8, 64, 96, 2)
    reference.heads = nn.Identity()
    with torch.no_grad():
        assert torch.allclose(backbone_features(vit, images), reference(images), atol=1e-6)
        assert torch.allclose(load_backbone_file(path, num_heads=4)(images), reference(images), atol=1e-6)
    assert [default_num_heads(w) for w in (192, 384, 768, 1024, 512)] == [3, 6, 12, 16, 8]


def test_veil_backbone_file_is_detected(tmp_path) -> None:
    config = MSNConfig.preset("tiny", num_layers=1)
    torch.manual_seed(2)
    vit = headless_vit(config).eval()
    path = tmp_path / "backbone.pt"
    save_backbone(vit, config, path)
    images = torch.randn(2, 3, 64, 64)

    loaded = load_backbone_file(path)

    with torch.no_grad():
        assert torch.equal(loaded(images), vit(images))


class Unpicklable:
    """Stands for arbitrary pickled code that weights-only loading must refuse."""


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"just some text\n", id="text"),
        pytest.param({"weights": torch.zeros(2)}, id="other-tensors"),
        pytest.param({"target_encoder": {"module.foo": torch.zeros(1)}}, id="not-deit"),
        pytest.param(Unpicklable(), id="arbitrary-pickle"),
    ],
)
def test_unknown_file_raises_naming_it(tmp_path, content) -> None:
    path = tmp_path / "mystery.bin"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, Unpicklable):
        path.write_bytes(pickle.dumps(content, protocol=2))
    else:
        torch.save(content, path)

    with pytest.raises(ValueError, match=str(path)):
        load_backbone_file(path)
