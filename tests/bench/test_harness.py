"""The benchmarks' shared harness: its clocks, its command line and the final JSON line."""

from __future__ import annotations

import importlib
import json
import time

import pytest

from bench import harness

BENCHMARKS = (
    "embed_speed",
    "export",
    "hash_lookup",
    "ingest",
    "label_efficiency.run",
    "ocr",
    "queue_load",
    "selection_speed",
)


def test_timed_measures_wall_and_cpu_time():
    with harness.timed() as timing:
        time.sleep(0.05)
        sum(i * i for i in range(200_000))
    assert timing.wall >= 0.05
    assert 0 < timing.cpu < timing.wall


def test_emit_prints_the_figures_as_one_json_line(capsys):
    figures = {"ratio": 1.5, "load_average": harness.rounded(harness.load_average())}
    assert harness.emit(figures) is figures
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out) == figures


def test_data_must_be_a_folder(tmp_path, capsys):
    parser = harness.parser("doc")
    harness.add_data(parser, default=tmp_path)
    assert harness.parse(parser, []).data == tmp_path
    with pytest.raises(SystemExit):
        harness.parse(parser, ["--data", str(tmp_path / "missing")])
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_builds_its_command_line_with_the_harness(name):
    module = importlib.import_module(f"bench.{name}")
    assert module.harness is harness
    help_text = module.arguments().format_help()
    assert help_text.startswith("usage:")
