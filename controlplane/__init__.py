"""Keel's control plane: settings, URLs, ASGI and Celery apps, projects, keys, routes, actions and audit."""

from .celery import app as celery_app

__all__ = ["celery_app"]
