"""Cursor pagination: constant cost per page however deep, and stable while rows are added.

Ordered by primary key, which is unique and never changes, so a page boundary can
neither repeat nor skip a row (``created_at`` ties would need DRF's offset fallback).
"""

from __future__ import annotations

from rest_framework.pagination import CursorPagination

__all__ = ["NewestFirstPagination", "OldestFirstPagination"]


class NewestFirstPagination(CursorPagination):
    """Messages and batches: newest first. ``?page_size=`` up to 500."""

    ordering = "-pk"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class OldestFirstPagination(CursorPagination):
    """Configuration rows (templates, senders, DLT entities): in creation order."""

    ordering = "pk"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500
