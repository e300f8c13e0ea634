"""Who may do what: authenticated users with Django model permissions, unless configured.

``EXOTEL_SMS['API_PERMISSION_CLASSES']`` (a list of dotted paths) replaces the defaults.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission, DjangoModelPermissions, IsAuthenticated
from rest_framework.request import Request

from ..conf import get_settings

__all__ = ["SmsModelPermissions", "default_permission_classes", "permission_classes"]

_VIEW = ["%(app_label)s.view_%(model_name)s"]


class SmsModelPermissions(DjangoModelPermissions):
    """DjangoModelPermissions where reading needs the ``view`` permission too.

    A view may name the permissions of a custom action in ``action_permissions``
    (``{"refresh": ["django_exotel_sms.change_smsmessage"]}``); they replace the
    method-based ones for that action.
    """

    perms_map = {
        "GET": _VIEW,
        "HEAD": _VIEW,
        "OPTIONS": [],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        wanted = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if wanted is not None:
            return bool(user.has_perms(wanted))
        return super().has_permission(request, view)


def default_permission_classes() -> list[type[BasePermission]]:
    return [IsAuthenticated, SmsModelPermissions]


def permission_classes() -> list[type[BasePermission]]:
    """The configured classes (read on every request, so settings overrides apply)."""
    configured = get_settings().api_permission_classes
    if configured is None:
        return default_permission_classes()
    return [import_string(path) if isinstance(path, str) else path for path in configured]
