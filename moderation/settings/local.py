"""The embedded, single-machine mode used by ``make demo`` and development.

DEBUG is off unless ``DJANGO_DEBUG=true``: people trying the demo see Veil's own error
pages, never Django's debug page with its list of URL patterns. WhiteNoise serves the
static files straight from the apps' folders (no ``collectstatic``), with DEBUG on or off.
"""

from .base import *  # noqa: F403
from .base import MIDDLEWARE, env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="veil-local-development-key-not-for-production")
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
