"""Framework-free machine learning for Veil.

Everything in this package works on bytes, PIL images, numpy arrays and torch modules.
It never imports Django, DRF or Celery and never reads settings: callers pass
configuration in explicitly.
"""
