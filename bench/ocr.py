"""Benchmark: rapidocr (as ``ml.text`` runs it) against Debian's tesseract on memes.

    python -m bench.ocr [--data DIR] [--images N] [--detect-sides 320,480,640]

Builds N synthetic memes from real photos of DIR, each with a known caption drawn from a
fixed list (top and/or bottom, or on a white banner; bold, oblique, serif, condensed;
white with a black outline, coloured, plain black, small, tilted; saved as JPEG), and
N other photos of DIR without any caption. Both engines read the same files, one after
the other, on one thread:

- rapidocr through ``ml.text`` (decode, detect, recognise, keep lines scoring at least
  ``ml.text.MIN_LINE_SCORE``), once per detector size in ``--detect-sides`` (default
  ``ml.text.DETECT_SIDE``; the first size is reported as "rapidocr", the others by
  size; 1280 leaves these images at full size, as rapidocr's default resizing does);
- ``tesseract FILE stdout -l eng`` (page segmentation 3, its default, and 11, sparse
  text), with ``OMP_THREAD_LIMIT=1``; skipped, and said so, when it is not installed.

For each it reports seconds per image with and without text, word recall (the share of
the caption's words, as a multiset, found in the output), character error rate (edit
distance between lowercased, whitespace-normalised strings over the caption's length)
and false text on plain photos (the share of photos with any output). For rapidocr it
also sweeps the line score threshold and prints the score quantiles of lines on memes
and on plain photos, the evidence for ``MIN_LINE_SCORE``. Clothing photos may hold real
text (a printed t-shirt, a label), so false text on them is an upper bound.

Ends with one JSON line of the figures, with the load average before and after.
Timings swing with the load of a shared machine.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench import harness
from ml import text as ml_text
from ml.images import to_rgb

DEFAULT_DATA = harness.ROOT.parent / "shared" / "datasets" / "clothing-small"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
TESSERACT_PSMS = (3, 11)
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)

CAPTIONS = (
    "when you finally get the weekend off",
    "nobody asked but here we are",
    "one does not simply walk into the office on monday",
    "they told me it would be easy",
    "me explaining my plan to the group chat",
    "this is fine everything is fine",
    "when the wifi drops for 3 seconds",
    "i have no idea what i am doing",
    "keep calm and carry on shopping",
    "that moment when you see the price tag",
    "first day at the new job",
    "my face when the pizza arrives",
    "expectation versus reality",
    "how it started how it is going",
    "you had one job",
    "brace yourselves the sale is coming",
    "not sure if genius or just lucky",
    "all the cool kids wear this now",
    "trust me i am an expert",
    "why walk when you can run late",
    "look at me i am the captain now",
    "it is over 9000",
    "shut up and take my money",
    "said no one ever",
    "is this a pigeon",
    "the neighbours are at it again",
    "go back to where you came from",
    "we do not want your kind here",
    "send them all home tomorrow",
    "they are ruining everything for us",
    "my grandmother still knits these sweaters",
    "if you know you know",
    "winter is coming get your coat",
    "sorry for the late reply was busy",
    "technically still the same outfit",
    "do not tell mom about this",
    "the council voted on it yesterday",
    "you cannot sit with us",
    "breaking news local man buys shirt",
    "twelve hours later still deciding",
)


@dataclass(frozen=True)
class Style:
    name: str
    font: str
    size: float
    """Font size as a fraction of the meme's width."""
    fill: str
    stroke: str | None
    upper: bool
    layout: str
    """"top-bottom", "bottom", "top" or "banner" (black text on a white band above)."""
    tilt: float = 0.0


STYLES = (
    Style("classic", "DejaVuSans-Bold.ttf", 0.075, "white", "black", True, "top-bottom"),
    Style("bottom", "DejaVuSans-Bold.ttf", 0.06, "white", "black", False, "bottom"),
    Style("banner", "DejaVuSans.ttf", 0.055, "black", None, False, "banner"),
    Style("yellow-oblique", "DejaVuSans-BoldOblique.ttf", 0.065, "#ffe14d", "black", True, "bottom"),
    Style("small-serif", "DejaVuSerif-Bold.ttf", 0.04, "white", "black", False, "bottom"),
    Style("condensed-red", "DejaVuSansCondensed-Bold.ttf", 0.07, "#e8322b", "white", True, "top"),
    Style("tilted", "DejaVuSans-Bold.ttf", 0.065, "white", "black", True, "top-bottom", tilt=4.0),
    Style("plain-black", "DejaVuSans-Bold.ttf", 0.06, "black", None, False, "top"),
)

MEME_WIDTHS = (400, 480, 500, 640, 800)


def draw_caption(photo: Image.Image, caption: str, style: Style, width: int) -> tuple[Image.Image, str]:
    """A meme of ``photo`` (scaled to ``width``) with ``caption`` drawn in ``style``.

    Returns the RGB image and the text as drawn, in reading order (top, then bottom).
    """
    text = caption.upper() if style.upper else caption
    photo = photo.resize((width, max(1, round(photo.height * width / photo.width))), Image.LANCZOS)
    font = ImageFont.truetype(str(FONT_DIR / style.font), max(10, round(style.size * width)))
    if style.layout == "top-bottom":
        words = text.split()
        cut = max(1, len(words) // 2)
        parts = [(" ".join(words[:cut]), "top"), (" ".join(words[cut:]), "bottom")]
    else:
        parts = [(text, "bottom" if style.layout == "bottom" else "top")]
    parts = [(p, where) for p, where in parts if p]

    margin = max(6, width // 40)
    if style.layout == "banner":
        lines = wrap(text, font, width - 2 * margin)
        line_h = font.getbbox("Ag")[3] + margin // 2
        band = margin * 2 + line_h * len(lines)
        canvas = Image.new("RGB", (width, photo.height + band), "white")
        canvas.paste(photo, (0, band))
        draw = ImageDraw.Draw(canvas)
        for i, line in enumerate(lines):
            draw.text((margin, margin + i * line_h), line, font=font, fill=style.fill)
        return canvas, " ".join(lines)

    layer = Image.new("RGBA", photo.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    stroke = max(2, round(font.size / 12)) if style.stroke else 0
    line_h = font.getbbox("Ag")[3] + 2 * stroke + 2
    drawn = []
    for part, where in parts:
        lines = wrap(part, font, width - 2 * margin)
        block = line_h * len(lines)
        y0 = margin if where == "top" else photo.height - margin - block
        for i, line in enumerate(lines):
            x = (width - draw.textlength(line, font=font)) / 2
            draw.text(
                (x, y0 + i * line_h), line, font=font, fill=style.fill, stroke_width=stroke, stroke_fill=style.stroke
            )
        drawn.extend(lines)
    if style.tilt:
        layer = layer.rotate(style.tilt, resample=Image.BICUBIC)
    out = photo.convert("RGBA")
    out.alpha_composite(layer)
    return out.convert("RGB"), " ".join(drawn)


def wrap(text: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    """Greedy word wrap of ``text`` into lines no wider than ``max_width`` pixels."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(lines[-1] + " " + word) <= max_width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def build_set(data: Path, n: int, folder: Path, seed: int = 0) -> tuple[list[Path], list[str], list[str], list[Path]]:
    """Writes n memes and n plain photos (JPEG, quality 85) under ``folder``.

    Returns the meme paths, their drawn text, their style names and the plain photos'
    paths. Photos are a seeded sample of ``data``; memes and plain photos share none.
    """
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2 * n:
        raise SystemExit(f"{data}: {len(files)} images, need {2 * n}")
    rng = random.Random(seed)
    chosen = rng.sample(files, 2 * n)
    memes, truths, styles, plains = [], [], [], []
    for i, path in enumerate(chosen[:n]):
        style = STYLES[i % len(STYLES)]
        caption = CAPTIONS[rng.randrange(len(CAPTIONS))]
        with Image.open(path) as photo:
            image, truth = draw_caption(to_rgb(photo), caption, style, rng.choice(MEME_WIDTHS))
        out = folder / f"meme-{i:03d}.jpg"
        image.save(out, quality=85)
        memes.append(out)
        truths.append(truth)
        styles.append(style.name)
    for i, path in enumerate(chosen[n:]):
        with Image.open(path) as photo:
            photo = to_rgb(photo)
            width = rng.choice(MEME_WIDTHS)
            photo = photo.resize((width, max(1, round(photo.height * width / photo.width))), Image.LANCZOS)
        out = folder / f"photo-{i:03d}.jpg"
        photo.save(out, quality=85)
        plains.append(out)
    return memes, truths, styles, plains


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def scores(outputs: list[str], truths: list[str]) -> dict[str, float]:
    """Micro-averaged word recall and character error rate of outputs against truths."""
    found = total = 0
    distance = length = 0
    for output, truth in zip(outputs, truths, strict=True):
        want, got = Counter(words(truth)), Counter(words(output))
        found += sum((want & got).values())
        total += sum(want.values())
        distance += edit_distance(normalise(output), normalise(truth))
        length += len(normalise(truth))
    return {"word_recall": found / total, "cer": distance / length}


def run_rapidocr(paths: list[Path], detect_side: int) -> tuple[list[list[ml_text.Line]], float]:
    """Raw lines of every image and the seconds per image (decode, detect, recognise)."""
    engine = ml_text.ocr_engine(1, detect_side=detect_side)
    ml_text.recognise(ml_text.decode_for_ocr(paths[0], label=str(paths[0])), engine=engine)
    with harness.timed() as timing:
        lines = [ml_text.recognise(ml_text.decode_for_ocr(p, label=str(p)), engine=engine) for p in paths]
    return lines, timing.wall / len(paths)


def run_tesseract(paths: list[Path], psm: int) -> tuple[list[str], float]:
    """Text of every image and the seconds per image (one process per image)."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    outputs = []
    with harness.timed() as timing:
        for path in paths:
            done = subprocess.run(
                ["tesseract", str(path), "stdout", "-l", "eng", "--psm", str(psm)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            outputs.append(" ".join(done.stdout.split()))
    return outputs, timing.wall / len(paths)


def engine_figures(meme_out, meme_s, plain_out, plain_s, truths) -> dict:
    figures = scores(meme_out, truths)
    return {
        "s_per_meme": round(meme_s, 4),
        "s_per_photo": round(plain_s, 4),
        "word_recall": round(figures["word_recall"], 4),
        "cer": round(figures["cer"], 4),
        "false_text_photos": round(sum(bool(o) for o in plain_out) / len(plain_out), 4),
    }


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__)
    harness.add_data(parser, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=40, help="memes, and as many plain photos")
    parser.add_argument(
        "--detect-sides",
        default=str(ml_text.DETECT_SIDE),
        help="comma-separated detector sizes for rapidocr; the first is reported as 'rapidocr'",
    )
    parser.add_argument("--keep", type=Path, help="write the generated images here instead of a temporary folder")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Both engines on generated memes and plain photos; prints and returns the figures."""
    sides = [int(s) for s in args.detect_sides.split(",")]
    load_before = harness.load_average()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="veil-bench-ocr-"))
    folder.mkdir(parents=True, exist_ok=True)
    memes, truths, style_names, plains = build_set(args.data, args.images, folder)
    print(f"{len(memes)} memes and {len(plains)} plain photos from {args.data} in {folder}")

    result: dict = {"images": args.images, "detect_side": sides[0], "min_line_score": ml_text.MIN_LINE_SCORE}
    for k, side in enumerate(sides):
        meme_lines, meme_s = run_rapidocr(memes, side)
        plain_lines, plain_s = run_rapidocr(plains, side)
        meme_out = [ml_text.lines_text(lines) for lines in meme_lines]
        plain_out = [ml_text.lines_text(lines) for lines in plain_lines]
        figures = engine_figures(meme_out, meme_s, plain_out, plain_s, truths)
        name = "rapidocr" if k == 0 else f"rapidocr_side{side}"
        result[name] = figures
        print(f"\n{name} (detector longer side {side} px, 1 thread): {figures}")
        if k == 0:
            result["threshold_sweep"] = sweep(meme_lines, plain_lines, truths)
            result["rapidocr_by_style"] = by_style(meme_out, truths, style_names)
            result["rapidocr_line_scores"] = line_scores(meme_lines, plain_lines, truths)
            show_misses(meme_out, truths, plain_out, plains)

    if shutil.which("tesseract") is None:
        print("\ntesseract is not installed (apt-get install -y tesseract-ocr): rapidocr only")
        result["tesseract"] = None
    else:
        version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        for psm in TESSERACT_PSMS:
            meme_out, meme_s = run_tesseract(memes, psm)
            plain_out, plain_s = run_tesseract(plains, psm)
            figures = engine_figures(meme_out, meme_s, plain_out, plain_s, truths)
            name = "tesseract" if psm == TESSERACT_PSMS[0] else f"tesseract_psm{psm}"
            figures["version"] = version
            result[name] = figures
            print(f"\n{name} (--psm {psm}, OMP_THREAD_LIMIT=1): {figures}")
            if psm == TESSERACT_PSMS[0]:
                result["tesseract_by_style"] = by_style(meme_out, truths, style_names)
        r, t = result["rapidocr"], result["tesseract"]
        result["time_ratio_tesseract_over_rapidocr"] = {
            "memes": round(t["s_per_meme"] / r["s_per_meme"], 3),
            "photos": round(t["s_per_photo"] / r["s_per_photo"], 3),
        }
        print(f"\ntime ratio tesseract / rapidocr: {result['time_ratio_tesseract_over_rapidocr']}")

    print("\nrapidocr word recall by style:", result["rapidocr_by_style"])
    if result.get("tesseract_by_style"):
        print("tesseract word recall by style:", result["tesseract_by_style"])
    print("\nrapidocr line score threshold sweep (recall on memes, share of photos with text):")
    for row in result["threshold_sweep"]:
        print(
            f"  >= {row['min_score']:.2f}: recall {row['word_recall']:.3f}  cer {row['cer']:.3f}  "
            f"false text {row['false_text_photos']:.3f}"
        )
    print("line score quantiles:", result["rapidocr_line_scores"])

    result["load_avg_before"] = harness.rounded(load_before)
    result["load_avg_after"] = harness.rounded(harness.load_average())
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    return harness.emit(run(harness.parse(arguments(), argv)))


def sweep(meme_lines, plain_lines, truths) -> list[dict]:
    rows = []
    for threshold in THRESHOLDS:
        meme_out = [ml_text.lines_text(lines, min_score=threshold) for lines in meme_lines]
        plain_out = [ml_text.lines_text(lines, min_score=threshold) for lines in plain_lines]
        figures = scores(meme_out, truths)
        rows.append(
            {
                "min_score": threshold,
                "word_recall": round(figures["word_recall"], 4),
                "cer": round(figures["cer"], 4),
                "false_text_photos": round(sum(bool(o) for o in plain_out) / len(plain_out), 4),
            }
        )
    return rows


def line_scores(meme_lines, plain_lines, truths) -> dict:
    """Score quantiles of meme lines whose words are mostly in the caption ("caption"),
    of other meme lines ("other_on_memes") and of every line on plain photos."""
    caption, other = [], []
    for lines, truth in zip(meme_lines, truths, strict=True):
        want = set(words(truth))
        for line in lines:
            got = words(line.text)
            (caption if got and sum(w in want for w in got) >= len(got) / 2 else other).append(line.score)
    photo = [line.score for lines in plain_lines for line in lines]

    def quantiles(values):
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "min": round(min(values), 3),
            **{f"q{q}": round(float(np.quantile(values, q / 100)), 3) for q in (5, 25, 50, 75)},
            "max": round(max(values), 3),
        }

    return {"caption": quantiles(caption), "other_on_memes": quantiles(other), "photos": quantiles(photo)}


def by_style(outputs, truths, style_names) -> dict[str, float]:
    result = {}
    for name in dict.fromkeys(style_names):
        idx = [i for i, s in enumerate(style_names) if s == name]
        result[name] = round(scores([outputs[i] for i in idx], [truths[i] for i in idx])["word_recall"], 3)
    return result


def show_misses(meme_out, truths, plain_out, plains, limit: int = 6) -> None:
    misses = [(o, t) for o, t in zip(meme_out, truths, strict=True) if normalise(o) != normalise(t)]
    print(f"rapidocr: {len(misses)} of {len(truths)} memes not read exactly; first few:")
    for output, truth in misses[:limit]:
        print(textwrap.indent(f"truth: {truth}\nread:  {output}", "  "))
    false = [(p.name, o) for p, o in zip(plains, plain_out, strict=True) if o]
    print(f"rapidocr: text on {len(false)} plain photos: {false[:limit]}")


if __name__ == "__main__":
    main(sys.argv[1:])
