"""REST API (Django REST framework): ``router`` and, in ``.urls``, its ``urlpatterns``.

``router`` is imported lazily so that this package's modules (e.g. the permission
classes named in settings) can be imported before the app registry is ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rest_framework.routers import DefaultRouter

    router: DefaultRouter

__all__ = ["router"]


def __getattr__(name: str) -> Any:
    if name == "router":
        from .routers import router

        return router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
