"""Embedding throughput: the full pipeline against the bare forward pass.

    python -m bench.embed_speed [--data DIR] [--images N] [--threads T] [--workers W ...]

For each backbone, on the first N image files of DIR (sorted paths; default the real
JPEGs of clothing-small), measures in the same run:

- pipeline: ``ml.backbones.embed`` on the file paths (decode, preprocess, forward,
  normalise), with DataLoader workers as ``embed`` chooses them unless ``--workers``
  names one or several counts to compare;
- forward: the backbone's module alone on the same images, decoded and preprocessed
  beforehand into batches of the same size (the baseline).

Backbones: ``efficientnet-lite0`` (packaged ImageNet weights); ``msn-tiny``, the tiny MSN
ViT (``MSNConfig.preset("tiny")``: 64 px, patch 8, 4 layers, width 192) with random
weights, which cost the same time as trained ones; ``vit-s16``, the ViT-S/16 architecture
at 224 px, also random. Each is written to a temporary file and loaded through the
registry, as Veil loads a trained one. One warm-up batch precedes every timing, and
each measurement is repeated ``--repeats`` times, forward and pipeline taking turns; the
best rate of each is reported (on a shared machine, the least disturbed one).

Prints a table with the ratio pipeline / forward (1.0: decoding costs nothing the
forward pass does not hide), then one JSON line. Timings swing with the load of a
shared machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from bench import harness
from ml.backbones import ImageDataset, default_num_workers, embed, load_image_backbone
from ml.msn import MSNConfig, headless_vit, save_backbone

DEFAULT_DATA = harness.ROOT.parent / "shared" / "datasets" / "clothing-small"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
BACKBONE_CHOICES = ("efficientnet-lite0", "msn-tiny", "vit-s16")


def image_files(data: Path, limit: int) -> list[Path]:
    """The first ``limit`` image files under ``data``, by sorted path."""
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit]


def load_backbone(name: str, tmp: Path):
    """The ``ml.backbones.ImageBackbone`` called ``name`` (see the module docstring)."""
    if name == "efficientnet-lite0":
        return load_image_backbone(name)
    config = MSNConfig.preset("tiny" if name == "msn-tiny" else "vit-s16")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vit = headless_vit(config)
    path = tmp / f"{name}.pt"
    save_backbone(vit, config, path)
    return load_image_backbone("vit", path=path)


def forward_rate(backbone, files: list[Path], batch_size: int) -> float:
    """Images per second of ``backbone.module`` on preprocessed batches (CPU)."""
    dataset = ImageDataset([str(p) for p in files], backbone.preprocess)
    tensors = torch.stack([dataset[i] for i in range(len(dataset))])
    batches = list(torch.split(tensors, batch_size))
    module = backbone.module.cpu().eval()
    with torch.inference_mode():
        module(batches[0])
        with harness.timed() as timing:
            for batch in batches:
                module(batch)
    return len(files) / timing.wall


def pipeline_rate(backbone, files: list[Path], batch_size: int, workers: int | None) -> float:
    """Images per second of ``ml.backbones.embed`` on the file paths."""
    paths = [str(p) for p in files]
    embed(backbone, paths[:batch_size], batch_size=batch_size, device="cpu", num_workers=0)
    with harness.timed() as timing:
        rows = embed(backbone, paths, batch_size=batch_size, device="cpu", num_workers=workers)
    assert rows.shape == (len(files), backbone.dim)
    return len(files) / timing.wall


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__)
    harness.add_data(parser, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=None,
        help="DataLoader workers for the pipeline; several counts are each measured (default: what embed() chooses)",
    )
    parser.add_argument("--backbones", nargs="+", choices=BACKBONE_CHOICES, default=list(BACKBONE_CHOICES))
    return parser


def run(args: argparse.Namespace, files: list[Path]) -> dict:
    """Pipeline and forward rates of each backbone on ``files``; prints the table and
    returns the figures."""
    default_workers = default_num_workers(len(files))
    worker_counts = args.workers or [None]
    load = harness.load_average()
    print(
        f"data: {len(files)} files from {args.data}; machine: {os.cpu_count()} cores, "
        f"load average {load[0]:.2f}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; batch {args.batch_size}; "
        f"embed() default workers: {default_workers}"
    )

    figures: dict = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backbones:
            backbone = load_backbone(name, Path(tmp))
            forward = 0.0
            rates = dict.fromkeys(worker_counts, 0.0)
            for _ in range(args.repeats):
                forward = max(forward, forward_rate(backbone, files, args.batch_size))
                for workers in worker_counts:
                    rate = pipeline_rate(backbone, files, args.batch_size, workers)
                    rates[workers] = max(rates[workers], rate)
            figures[f"{name}_forward_images_per_s"] = round(forward, 2)
            for workers, rate in rates.items():
                shown = default_workers if workers is None else workers
                key = name if len(worker_counts) == 1 else f"{name}_workers{shown}"
                figures[f"{key}_images_per_s"] = round(rate, 2)
                figures[f"{key}_ratio"] = round(rate / forward, 3)
                rows.append((name, shown, rate, forward))

    print(f"{'backbone':<20} {'workers':>7} {'pipeline img/s':>15} {'forward img/s':>14} {'ratio':>6}")
    for name, workers, rate, forward in rows:
        print(f"{name:<20} {workers:>7} {rate:>15.1f} {forward:>14.1f} {rate / forward:>6.2f}")

    figures.update(
        {
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "num_workers": default_workers if args.workers is None else args.workers,
            "images": len(files),
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "cpu_count": os.cpu_count(),
            "load_average": harness.rounded(load),
        }
    )
    figures["load_average_end"] = harness.rounded(harness.load_average())
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = arguments()
    args = harness.parse(parser, argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    files = image_files(args.data, args.images)
    if not files:
        parser.error(f"no image files under {args.data}")
    return harness.emit(run(args, files))


if __name__ == "__main__":
    main(sys.argv[1:])
