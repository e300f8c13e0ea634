"""How messages leave: swappable like Django's e-mail backends (``EXOTEL_SMS['BACKEND']``)."""

from __future__ import annotations

from django.utils.module_loading import import_string

from ..conf import get_settings
from .base import BaseBackend

_cache: dict[tuple[str, str], BaseBackend] = {}


def get_backend(account: str | None = None) -> BaseBackend:
    """The configured backend for an account; one instance (and HTTP pool) per process."""
    path = get_settings().backend
    key = (path, account or "default")
    backend = _cache.get(key)
    if backend is None:
        backend = import_string(path)(account=account or "default")
        _cache[key] = backend
    return backend


def reset_backends() -> None:
    for backend in _cache.values():
        backend.close()
    _cache.clear()


__all__ = ["BaseBackend", "get_backend", "reset_backends"]
