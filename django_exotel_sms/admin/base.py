"""Typed ModelAdmin bases and the read-only pattern shared by message and batch pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.http import HttpRequest

from .pagination import CappedCountPaginator

if TYPE_CHECKING:
    from django.db.models import Model

    ModelAdmin = admin.ModelAdmin[Any]
    TabularInline = admin.TabularInline[Any, Any]
    StackedInline = admin.StackedInline[Any, Any]
else:
    ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline
    StackedInline = admin.StackedInline
    Model = Any


class BigTableMixin:
    """No full-table COUNT(*): capped paginator, no total count."""

    show_full_result_count = False
    paginator: ClassVar[type] = CappedCountPaginator
    # Facet counts (Django 5.0+) run one COUNT per filter choice: never on big tables.
    if hasattr(admin, "ShowFacets"):
        show_facets = admin.ShowFacets.NEVER


class ReadOnlyAdmin(BigTableMixin, ModelAdmin):
    """Rows written by the app, never by hand: viewable, not addable or editable.

    Change permission still unlocks the changelist actions; the object page is
    always the read-only "view" page.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return obj is None and super().has_change_permission(request)


class ReadOnlyInline(TabularInline):
    """History rows shown under their message; visible to whoever may view the message."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        opts = self.parent_model._meta
        return any(
            request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")
            for action in ("view", "change")
        )
