"""Charts for the pages, as small self-contained SVG documents, and the 2-D projection of
embeddings that the embedding map draws.

Pure functions over numbers and strings: no Django, no files. Every text and attribute
value that goes into the SVG is escaped, so labels chosen by users are safe to inline in
a page. The markup is regular so that pages and tests can find their way around it:

- a line chart draws each series as ``<g class="series" data-name=... data-points=n>``
  holding one ``<polyline>`` and, when markers are on, one ``<circle class="point">``
  per point;
- a scatter plot draws each point as ``<circle class="point" data-group=...>`` inside
  ``<g class="points">``, carrying the caller's ``data-*`` attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np

# Okabe & Ito's colour-blind-safe palette, then Tableau's for taxonomies beyond eight.
PALETTE: tuple[str, ...] = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#d55e00",
    "#56b4e9",
    "#8c6d1f",
    "#000000",
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
)
GREY = "#b8bcc6"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"
SVG_NS = "http://www.w3.org/2000/svg"


@dataclass(frozen=True)
class Series:
    """One line of a line chart: ``x`` and ``y`` of equal length, drawn in order."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    label: str | None = None
    color: str | None = None
    dashed: bool = False


def category_colors(keys: Sequence[str]) -> dict[str, str]:
    """A stable colour per key, in the given order, cycling through `PALETTE`."""
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """About `count` round tick values covering ``[lo, hi]``, the ends included.

    With `integer`, steps are whole numbers (for counts).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"Axis limits must be finite, got {lo} and {hi}.")
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    if integer:
        raw = max(raw, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(s * magnitude for s in multiples if s * magnitude >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9)
    ticks = [round(first * step, 10)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round((first + len(ticks)) * step, 10))
    return ticks


def _fmt_tick(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _num(value: float) -> str:
    return f"{value:.1f}"


def _attrs(values: Mapping[str, object]) -> str:
    return "".join(f" {name}={quoteattr(str(v))}" for name, v in values.items() if v is not None)


def _open_svg(width: int, height: int, title: str, css_class: str) -> list[str]:
    return [
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' class={quoteattr(css_class)} role="img" aria-label={quoteattr(title or css_class)}'
        f' font-family={quoteattr(FONT)} font-size="12">',
        f"<title>{escape(title)}</title>" if title else "",
    ]


class _Frame:
    """The plotting area of a chart and the mapping from data to pixels."""

    def __init__(
        self,
        width: int,
        height: int,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        margin: tuple[int, int, int, int],
    ):
        self.left, self.top, self.right, self.bottom = margin
        self.width, self.height = width, height
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range

    @property
    def inner_right(self) -> float:
        return self.width - self.right

    @property
    def inner_bottom(self) -> float:
        return self.height - self.bottom

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.inner_right - self.left)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.inner_bottom - (y - self.y0) / span * (self.inner_bottom - self.top)

    def axes(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str, y_label: str) -> str:
        out = ['<g class="axes" stroke="#d9dce3" fill="#5b6170">']
        for t in y_ticks:
            y = _num(self.py(t))
            out.append(f'<line x1="{self.left}" x2="{_num(self.inner_right)}" y1="{y}" y2="{y}"/>')
            out.append(
                f'<text x="{self.left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle"'
                f' stroke="none">{escape(_fmt_tick(t))}</text>'
            )
        for t in x_ticks:
            x = _num(self.px(t))
            out.append(f'<line x1="{x}" x2="{x}" y1="{_num(self.inner_bottom)}" y2="{_num(self.inner_bottom + 4)}"/>')
            out.append(
                f'<text x="{x}" y="{_num(self.inner_bottom + 16)}" text-anchor="middle"'
                f' stroke="none">{escape(_fmt_tick(t))}</text>'
            )
        out.append(
            f'<line x1="{self.left}" x2="{_num(self.inner_right)}" y1="{_num(self.inner_bottom)}"'
            f' y2="{_num(self.inner_bottom)}" stroke="#8a90a0"/>'
        )
        centre_x = _num((self.left + self.inner_right) / 2)
        out.append(
            f'<text class="x-label" x="{centre_x}" y="{self.height - 6}" text-anchor="middle"'
            f' stroke="none">{escape(x_label)}</text>'
        )
        centre_y = _num((self.top + self.inner_bottom) / 2)
        out.append(
            f'<text class="y-label" x="14" y="{centre_y}" text-anchor="middle" stroke="none"'
            f' transform="rotate(-90 14 {centre_y})">{escape(y_label)}</text>'
        )
        out.append("</g>")
        return "".join(out)


def line_chart_svg(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    title: str = "",
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    markers: bool = True,
    x_integer: bool = False,
    width: int = 520,
    height: int = 300,
    empty_text: str = "No data yet",
) -> str:
    """A line chart of `series` with axes, ticks and a legend, as an SVG string.

    Axis ranges default to the data's, widened to round ticks (whole numbers on x with
    `x_integer`). A series with one point shows as its marker (with `markers` off, as a
    dot). Non-finite points are dropped.
    """
    cleaned: list[tuple[Series, list[tuple[float, float]]]] = []
    for s in series:
        if len(s.x) != len(s.y):
            raise ValueError(f"Series {s.name!r}: x and y differ in length ({len(s.x)} vs {len(s.y)}).")
        points = [
            (float(x), float(y))
            for x, y in zip(s.x, s.y, strict=True)
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
        ]
        cleaned.append((s, points))
    xs = [x for _, pts in cleaned for x, _ in pts]
    ys = [y for _, pts in cleaned for _, y in pts]
    x_ticks = nice_ticks(*(x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))), integer=x_integer)
    y_ticks = nice_ticks(*(y_range or ((min(ys), max(ys)) if ys else (0.0, 1.0))))
    entries = [(s.label or s.name, s.color) for s, _ in cleaned]
    columns = _legend_columns([label for label, _ in entries], width - 52 - 14)
    legend_rows = max(1, math.ceil(len(entries) / columns))
    frame = _Frame(
        width, height, (x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1]), margin=(52, 14 + 18 * legend_rows, 14, 40)
    )

    out = _open_svg(width, height, title, "chart line-chart")
    out.append(frame.axes(x_ticks, y_ticks, x_label, y_label))
    colors = category_colors([s.name for s, _ in cleaned])
    for s, points in cleaned:
        color = s.color or colors[s.name]
        out.append(
            f'<g class="series"{_attrs({"data-name": s.name, "data-points": len(points)})}'
            f" stroke={quoteattr(color)} fill={quoteattr(color)}>"
        )
        coords = " ".join(f"{_num(frame.px(x))},{_num(frame.py(y))}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<polyline points="{coords}" fill="none" stroke-width="2" stroke-linejoin="round"{dash}/>')
        if markers or len(points) == 1:
            for x, y in points:
                out.append(
                    f'<circle class="point" cx="{_num(frame.px(x))}" cy="{_num(frame.py(y))}" r="3.5">'
                    f"<title>{escape(f'{s.label or s.name}: {y:.3f} at {x:g}')}</title></circle>"
                )
        out.append("</g>")
    if not xs:
        out.append(
            f'<text class="empty" x="{_num((frame.left + frame.inner_right) / 2)}"'
            f' y="{_num((frame.top + frame.inner_bottom) / 2)}" text-anchor="middle"'
            f' fill="#6b7280">{escape(empty_text)}</text>'
        )
    out.append(
        _legend(
            [(s.label or s.name, s.color or colors[s.name], s.dashed) for s, _ in cleaned],
            left=frame.left,
            top=8,
            width=width - frame.left - frame.right,
            columns=columns,
        )
    )
    out.append("</svg>")
    return "".join(out)


def _legend_columns(labels: Sequence[str], width: float) -> int:
    """How many legend entries fit side by side, at about 6.5 px per character."""
    widest = max((len(label) for label in labels), default=0) * 6.5 + 28
    return max(1, min(len(labels) or 1, 4, int(width // widest)))


def _legend(entries: Sequence[tuple[str, str, bool]], *, left: float, top: float, width: float, columns: int) -> str:
    out = ['<g class="legend">']
    column = width / columns
    for i, (label, color, dashed) in enumerate(entries):
        x = left + (i % columns) * column
        y = top + (i // columns) * 18
        dash = ' stroke-dasharray="4 2"' if dashed else ""
        out.append(
            f'<line x1="{_num(x)}" x2="{_num(x + 14)}" y1="{_num(y + 5)}" y2="{_num(y + 5)}"'
            f' stroke={quoteattr(color)} stroke-width="3"{dash}/>'
        )
        out.append(f'<text x="{_num(x + 20)}" y="{_num(y + 9)}" fill="#1d2330">{escape(label)}</text>')
    out.append("</g>")
    return "".join(out)


def pr_curves_svg(
    curves: Mapping[str, Mapping[str, Sequence[float]] | None],
    *,
    labels: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
    title: str = "Precision-recall per category",
    width: int = 520,
    height: int = 320,
) -> str:
    """Precision against recall, one line per class, from ``ml.metrics.pr_curves``.

    ``curves`` maps a class key to ``{"precision": [...], "recall": [...]}`` or to None
    (a class without positives, which gets no line). ``labels`` and ``colors`` map
    class keys to legend text and colours.
    """
    labels = labels or {}
    colors = colors or category_colors(list(curves))
    series = [
        Series(name=key, x=curve["recall"], y=curve["precision"], label=labels.get(key, key), color=colors.get(key))
        for key, curve in curves.items()
        if curve
    ]
    return line_chart_svg(
        series,
        x_label="recall",
        y_label="precision",
        title=title,
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        markers=False,
        width=width,
        height=height,
        empty_text="No evaluation labels yet",
    )


def scatter_svg(
    xy: np.ndarray,
    groups: Sequence[str],
    *,
    colors: Mapping[str, str],
    filled: Sequence[bool] | None = None,
    point_attrs: Sequence[Mapping[str, object]] | None = None,
    titles: Sequence[str] | None = None,
    title: str = "",
    width: int = 640,
    height: int = 440,
    radius: float = 4.0,
) -> str:
    """A scatter plot of ``xy`` (n, 2), each point coloured by its group.

    A group missing from ``colors`` is grey. ``filled[i]`` False draws point i as a ring.
    ``point_attrs[i]`` adds attributes (such as ``data-*``) to point i's circle and
    ``titles[i]`` its tooltip. Axes keep equal scales so distances read true.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2) if len(xy) else np.zeros((0, 2))
    n = len(xy)
    for name, seq in (("groups", groups), ("filled", filled), ("point_attrs", point_attrs), ("titles", titles)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} points.")
    pad = radius + 6
    out = _open_svg(width, height, title, "chart scatter")
    out.append(
        f'<rect class="frame" x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="6"'
        ' fill="#fbfbfc" stroke="#e5e7eb"/>'
    )
    out.append('<g class="points" stroke-width="1.6">')
    if n:
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        scale = min((width - 2 * pad) / span[0], (height - 2 * pad) / span[1])
        offset = np.array([(width - scale * span[0]) / 2, (height - scale * span[1]) / 2])
        pixels = (xy - lo) * scale + offset
        pixels[:, 1] = height - pixels[:, 1]
        for i, ((px, py), group) in enumerate(zip(pixels, groups, strict=True)):
            color = colors.get(group, GREY)
            solid = filled is None or filled[i]
            paint = f'fill="{color}" stroke="#ffffff"' if solid else f'fill="#ffffff" stroke="{color}"'
            extra = _attrs(point_attrs[i]) if point_attrs is not None else ""
            tip = f"<title>{escape(titles[i])}</title>" if titles is not None else ""
            out.append(
                f'<circle class="point" cx="{_num(px)}" cy="{_num(py)}" r="{radius:g}" {paint}'
                f"{_attrs({'data-group': group})}{extra}>{tip}</circle>"
            )
    else:
        out.append(
            f'<text class="empty" x="{width / 2:g}" y="{height / 2:g}" text-anchor="middle"'
            f' fill="#6b7280">No embeddings yet</text>'
        )
    out.append("</g></svg>")
    return "".join(out)


def sample_indices(n: int, max_points: int, *, random_state: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` items, drawn without replacement."""
    if max_points < 1:
        raise ValueError(f"max_points must be positive, got {max_points}.")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=max_points, replace=False)).astype(np.int64)


def pca_2d(X: np.ndarray, *, random_state: int = 0) -> np.ndarray:
    """The first two principal components of ``X`` (n, d), shape (n, 2).

    Fewer than two points, or fewer than two dimensions, leave zero columns.
    """
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got shape {X.shape}.")
    n, d = X.shape
    out = np.zeros((n, 2))
    components = min(2, n, d)
    if n < 2 or components < 1:
        return out
    out[:, :components] = PCA(n_components=components, random_state=random_state).fit_transform(X)
    return out
