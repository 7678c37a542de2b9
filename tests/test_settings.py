"""One code base, two run modes: only environment variables change."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, django
from django.conf import settings
django.setup()
from moderation.celery import app
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": settings.DATABASES["default"]["NAME"],
    "db_host": settings.DATABASES["default"].get("HOST", ""),
    "broker": app.conf.broker_url,
    "broker_options": app.conf.broker_transport_options,
    "storage_backend": settings.STORAGES["default"]["BACKEND"],
    "debug": settings.DEBUG,
    "gpu_routes": sorted(k for k, v in app.conf.task_routes.items() if v["queue"] == "gpu"),
}))
"""


def probe(tmp_path, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "VEIL_", "DJANGO_"))}
    clean.update({"VEIL_VAR_DIR": str(tmp_path / "var")}, **env)
    clean.setdefault("DJANGO_SETTINGS_MODULE", "moderation.settings.local")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_default_needs_no_server(tmp_path):
    found = probe(tmp_path)
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["db_name"].startswith(str(tmp_path / "var"))
    assert found["broker"].startswith("filesystem://")
    assert Path(found["broker_options"]["data_folder_in"]).is_dir()
    assert found["storage_backend"] == "labeling.storage.WholeFileSystemStorage"
    assert found["gpu_routes"] == ["labeling.tasks.embed_task", "labeling.tasks.pretrain_task"]


def test_scaled_mode_from_environment_only(tmp_path):
    found = probe(
        tmp_path,
        DJANGO_SETTINGS_MODULE="moderation.settings.production",
        DJANGO_SECRET_KEY="s3cret",
        DATABASE_URL="postgres://veil:pw@db.internal:5432/veil",
        CELERY_BROKER_URL="redis://queue.internal:6379/0",
        VEIL_S3_BUCKET="veil-media",
        VEIL_S3_ENDPOINT_URL="http://minio.internal:9000",
    )
    assert found["engine"] == "django.db.backends.postgresql"
    assert (found["db_name"], found["db_host"]) == ("veil", "db.internal")
    assert found["broker"] == "redis://queue.internal:6379/0" and found["broker_options"] == {}
    assert found["storage_backend"] == "storages.backends.s3.S3Storage"
    assert found["debug"] is False


def test_production_refuses_to_start_without_a_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VEIL_"))}
    env.update(DJANGO_SETTINGS_MODULE="moderation.settings.production", VEIL_VAR_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "DJANGO_SECRET_KEY" in out.stderr


SERVE_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1")
missing = client.get("/no-such-page/")
style = client.get("/static/css/veil.css")
docs_script = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
print(json.dumps({
    "debug": settings.DEBUG,
    "missing": [missing.status_code, missing.content.decode()],
    "static": [style.status_code, docs_script.status_code],
}))
"""


def test_demo_mode_shows_veils_error_pages_and_still_serves_static_files(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "VEIL_", "DJANGO_"))}
    clean.update(VEIL_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="moderation.settings.local")
    out = subprocess.run([sys.executable, "-c", SERVE_PROBE], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["debug"] is False
    status, page = found["missing"]
    assert status == 404 and 'data-status="404"' in page and "URLconf" not in page
    assert found["static"] == [200, 200]
