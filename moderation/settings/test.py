"""Settings for the test suite.

The suite runs twice in CI: with the embedded defaults and with ``DATABASE_URL`` and
``CELERY_BROKER_URL`` pointing at the PostgreSQL and Redis servers.
"""

import os

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, DATABASES, VAR_DIR, env, filesystem_broker_options

DEBUG = False
SECRET_KEY = "veil-test-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
VEIL_IMPORT_WORKERS = 2

if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # One test database per run, so runs side by side on one server don't clash.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
else:
    # A file, not ":memory:", so that a real worker process started by an integration
    # test sees the same test database; one per test run, so runs side by side don't clash.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-veil-{os.getpid()}.sqlite3")}

if CELERY_BROKER_URL.startswith("filesystem"):
    # Apart from the broker folder of a demo running from the same checkout.
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(VAR_DIR / "test-broker")
