"""DLT entities and sender IDs: plain management (searchable, for autocomplete)."""

from __future__ import annotations

from django.contrib import admin

from ..models import DltEntity, SenderId
from .base import ModelAdmin


@admin.register(DltEntity)
class DltEntityAdmin(ModelAdmin):
    list_display = ("name", "entity_id", "created_at")
    search_fields = ("name", "entity_id")
    readonly_fields = ("created_at", "updated_at")


@admin.register(SenderId)
class SenderIdAdmin(ModelAdmin):
    list_display = ("header", "entity", "description", "is_active")
    list_filter = ("is_active",)
    list_select_related = ("entity",)
    search_fields = ("header", "description")
    autocomplete_fields = ("entity",)
    readonly_fields = ("created_at",)
