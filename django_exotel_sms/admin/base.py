"""Typed ModelAdmin bases and the read-only pattern shared by message and batch pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpRequest

from ..querystring import NUL
from .pagination import CappedCountPaginator

if TYPE_CHECKING:
    from django.contrib.admin.views.main import ChangeList
    from django.db.models import Model

    _ModelAdmin = admin.ModelAdmin[Any]
    TabularInline = admin.TabularInline[Any, Any]
    StackedInline = admin.StackedInline[Any, Any]
else:
    _ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline
    StackedInline = admin.StackedInline
    Model = Any


class ModelAdmin(_ModelAdmin):
    """Every admin of the app: a query string or id no row can match is refused, not a 500."""

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        # PostgreSQL refuses a NUL in any comparison (a filter value, the search box); the
        # changelist answers IncorrectLookupParameters with its "?e=1" page.
        if any(NUL in value for _name, values in request.GET.lists() for value in values):
            raise IncorrectLookupParameters("A NUL character in the query string.")
        return super().get_changelist_instance(request)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        try:
            return super().get_object(request, object_id, from_field)
        except OverflowError:  # an id wider than the column (SQLite cannot bind it)
            return None


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
