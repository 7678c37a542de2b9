"""docker-compose.yml is parsed (no Docker engine runs here) and checked against the
settings the code actually reads."""

import re
from pathlib import Path

import environ
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_vars_read_by_settings() -> set[str]:
    names = set()
    for path in (ROOT / "moderation" / "settings").glob("*.py"):
        names |= set(re.findall(r'env\.\w+\(\s*"([A-Z_0-9]+)"', path.read_text()))
    return names


def test_services_present_with_healthchecks(compose):
    services = compose["services"]
    assert set(services) == {"web", "worker", "worker-gpu", "postgres", "redis"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    assert {"media", "pgdata", "redisdata"} <= set(compose["volumes"])
    assert any("pgdata" in v for v in services["postgres"]["volumes"])


def test_app_services_environment_matches_settings(compose):
    read = _env_vars_read_by_settings()
    for name in ("web", "worker", "worker-gpu"):
        env = compose["services"][name]["environment"]
        unknown = set(env) - read - {"DJANGO_SETTINGS_MODULE"}
        assert not unknown, f"{name} sets variables the settings never read: {unknown}"
        assert env["DJANGO_SETTINGS_MODULE"] == "moderation.settings.production"
        db = environ.Env.db_url_config(env["DATABASE_URL"])
        assert db["ENGINE"] == "django.db.backends.postgresql" and db["HOST"] == "postgres"
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
        pg = compose["services"]["postgres"]["environment"]
        assert (db["USER"], db["PASSWORD"], db["NAME"]) == (
            pg["POSTGRES_USER"],
            pg["POSTGRES_PASSWORD"],
            pg["POSTGRES_DB"],
        )
        assert "DJANGO_SECRET_KEY" in env, "production settings have no default secret"


def test_commands_match_the_code(compose):
    from django.conf import settings

    services = compose["services"]
    assert "gunicorn moderation.wsgi:application" in services["web"]["command"]
    assert "migrate" in services["web"]["command"]
    worker, gpu = services["worker"]["command"], services["worker-gpu"]["command"]
    assert "-A moderation worker" in worker and "--queues default" in worker
    # Imports start analysis processes, which a prefork child may not: see test_worker.
    assert "--pool threads" in worker or "--pool solo" in worker
    assert "--queues gpu" in gpu
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"
    gpu_tasks = {task for task, route in settings.CELERY_TASK_ROUTES.items() if route["queue"] == "gpu"}
    assert gpu_tasks, "no task is routed to the gpu queue"
    assert services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name in ("web", "worker", "worker-gpu"):
        conditions = services[name]["depends_on"]
        assert conditions["postgres"]["condition"] == conditions["redis"]["condition"] == "service_healthy"
