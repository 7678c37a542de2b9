"""The project's structural rules: the ML core stays framework-free, the layout holds."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    """``ml/selection/kcenter.py`` -> ``ml.selection.kcenter``; a package's ``__init__`` names the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_ml_never_loads_django():
    modules = sorted(_module_name(p) for p in (ROOT / "ml").rglob("*.py") if p.parent.name != "__pycache__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'celery', 'labeling', 'moderation'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert len(modules) > 1, "ml/ has no modules"
    assert out.stdout.strip() == "", f"ml imported framework modules: {out.stdout.strip()}"


def test_layout_of_the_design_card_exists():
    for name in (
        "manage.py",
        "pyproject.toml",
        "moderation",
        "labeling",
        "ml",
        "templates",
        "static",
        "tests",
        "docker-compose.yml",
        "bench",
        "README.md",
        "Makefile",
        ".ci/run",
    ):
        assert (ROOT / name).exists(), name


def test_torch_pins():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.14.1"' in text and '"torchvision==0.29.1"' in text
