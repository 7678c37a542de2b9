"""The embedded, single-machine mode used by ``make demo`` and development."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="veil-local-development-key-not-for-production")
