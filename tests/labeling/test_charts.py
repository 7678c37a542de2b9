"""Chart helpers: well-formed SVG with the expected series and points, safe text, and the
seeded 2-D projection of embeddings."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from labeling import charts
from ml.metrics import evaluate

NS = {"svg": charts.SVG_NS}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{{{charts.SVG_NS}}}svg"
    return root


def series_of(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-name"): g for g in root.iterfind(".//svg:g[@class='series']", NS)}


def polyline_points(group: ET.Element) -> list[tuple[float, float]]:
    text = group.find("svg:polyline", NS).get("points").split()
    return [tuple(float(v) for v in pair.split(",")) for pair in text]


def test_line_chart_has_one_group_per_series_and_one_marker_per_point():
    svg = charts.line_chart_svg(
        [
            charts.Series("accuracy", [12, 24, 36], [0.5, 0.7, 0.8]),
            charts.Series("macro_f1", [12, 24, 36], [0.4, 0.6, 0.75], label="macro-F1", dashed=True),
        ],
        x_label="labels",
        y_label="score",
        title="Learning curve",
        y_range=(0, 1),
    )
    root = parse(svg)
    groups = series_of(root)
    assert set(groups) == {"accuracy", "macro_f1"}
    for group in groups.values():
        assert group.get("data-points") == "3"
        assert len(polyline_points(group)) == 3
        assert len(group.findall("svg:circle[@class='point']", NS)) == 3
    assert groups["accuracy"].find("svg:polyline", NS).get("stroke-dasharray") is None
    assert groups["macro_f1"].find("svg:polyline", NS).get("stroke-dasharray")
    assert root.find("svg:title", NS).text == "Learning curve"
    legend = [t.text for t in root.iterfind(".//svg:g[@class='legend']/svg:text", NS)]
    assert legend == ["accuracy", "macro-F1"]


def test_higher_values_are_drawn_higher_and_later_x_further_right():
    root = parse(charts.line_chart_svg([charts.Series("s", [0, 10], [0.2, 0.9])], x_label="x", y_label="y"))
    (x0, y0), (x1, y1) = polyline_points(series_of(root)["s"])
    assert x1 > x0 and y1 < y0


def test_a_single_point_shows_as_a_marker_even_without_markers():
    root = parse(charts.line_chart_svg([charts.Series("s", [5], [0.5])], x_label="x", y_label="y", markers=False))
    assert len(series_of(root)["s"].findall("svg:circle", NS)) == 1


def test_empty_chart_says_so_and_stays_valid():
    root = parse(charts.line_chart_svg([], x_label="x", y_label="y", empty_text="Nothing yet"))
    assert not series_of(root)
    assert root.find(".//svg:text[@class='empty']", NS).text == "Nothing yet"


def test_non_finite_points_are_dropped_and_mismatched_lengths_raise():
    root = parse(
        charts.line_chart_svg([charts.Series("s", [1, 2, 3], [0.1, float("nan"), None])], x_label="x", y_label="y")
    )
    assert series_of(root)["s"].get("data-points") == "1"
    with pytest.raises(ValueError, match="differ in length"):
        charts.line_chart_svg([charts.Series("s", [1, 2], [0.1])], x_label="x", y_label="y")


def test_text_is_escaped():
    nasty = '<script>alert("x")</script> & "quotes"'
    svg = charts.line_chart_svg(
        [charts.Series(nasty, [1], [0.5], label=nasty)], x_label=nasty, y_label="y", title=nasty
    )
    assert "<script>" not in svg
    root = parse(svg)
    assert root.find("svg:title", NS).text == nasty
    assert nasty in series_of(root)


def test_pr_curves_from_evaluate_give_one_line_per_class_with_positives():
    rng = np.random.default_rng(0)
    classes = ["violence", "drugs", "neutral"]
    y = np.array(["violence"] * 20 + ["neutral"] * 20)
    proba = rng.dirichlet(np.ones(3), size=len(y))
    curves = evaluate(y, proba, classes)["pr_curves"]
    assert curves["drugs"] is None
    root = parse(charts.pr_curves_svg(curves, labels={"violence": "Violence"}))
    groups = series_of(root)
    assert set(groups) == {"violence", "neutral"}
    for key, group in groups.items():
        assert len(polyline_points(group)) == len(curves[key]["precision"])
        assert not group.findall("svg:circle", NS), "PR curves draw no markers"
    legend = [t.text for t in root.iterfind(".//svg:g[@class='legend']/svg:text", NS)]
    assert legend == ["Violence", "neutral"]


def test_scatter_draws_every_point_with_its_colour_fill_and_attributes():
    xy = np.array([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]])
    svg = charts.scatter_svg(
        xy,
        ["a", "b", ""],
        colors={"a": "#111111", "b": "#222222"},
        filled=[True, False, True],
        point_attrs=[{"data-image-id": i, "data-blurred-url": f"/images/{i}/blurred/"} for i in (7, 8, 9)],
        titles=["seven", "eight", "nine"],
    )
    circles = parse(svg).findall(".//svg:g[@class='points']/svg:circle", NS)
    assert [c.get("data-image-id") for c in circles] == ["7", "8", "9"]
    assert circles[0].get("fill") == "#111111"
    assert circles[1].get("fill") == "#ffffff" and circles[1].get("stroke") == "#222222"
    assert circles[2].get("fill") == charts.GREY
    assert circles[1].find("svg:title", NS).text == "eight"
    width, height = (float(v) for v in parse(svg).get("viewBox").split()[2:])
    for c in circles:
        assert 0 <= float(c.get("cx")) <= width and 0 <= float(c.get("cy")) <= height


def test_scatter_rejects_mismatched_lengths_and_handles_no_points():
    with pytest.raises(ValueError, match="groups"):
        charts.scatter_svg(np.zeros((2, 2)), ["a"], colors={})
    root = parse(charts.scatter_svg(np.zeros((0, 2)), [], colors={}))
    assert not root.findall(".//svg:circle", NS)


def test_sample_indices_are_seeded_sorted_unique_and_capped():
    a = charts.sample_indices(10_000, 2000, random_state=3)
    assert len(a) == 2000 and len(set(a.tolist())) == 2000 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, charts.sample_indices(10_000, 2000, random_state=3))
    assert not np.array_equal(a, charts.sample_indices(10_000, 2000, random_state=4))
    assert np.array_equal(charts.sample_indices(5, 2000), np.arange(5))


def test_pca_2d_separates_clusters_along_the_first_component():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(50, 16)), rng.normal(size=(50, 16)) + 8])
    coords = charts.pca_2d(X, random_state=0)
    assert coords.shape == (100, 2)
    assert abs(coords[:50, 0].mean() - coords[50:, 0].mean()) > 10
    assert np.allclose(coords, charts.pca_2d(X, random_state=0))
    assert charts.pca_2d(np.ones((1, 4))).shape == (1, 2)
    assert charts.pca_2d(np.arange(5.0).reshape(5, 1))[:, 1].tolist() == [0.0] * 5


def test_nice_ticks_cover_the_range_with_round_steps():
    assert charts.nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = charts.nice_ticks(0, 23)
    assert ticks[0] == 0 and ticks[-1] >= 23 and ticks == [0, 5, 10, 15, 20, 25]
    assert charts.nice_ticks(0, 12, integer=True) == [0, 5, 10, 15]
    assert charts.nice_ticks(0, 2, integer=True) == [0, 1, 2]
