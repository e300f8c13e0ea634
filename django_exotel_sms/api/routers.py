"""The router: projects include ``django_exotel_sms.api.urls`` under a prefix of their choice."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from ..reports.api import ExportViewSet
from . import views

__all__ = ["router"]

router = DefaultRouter()
router.register("messages", views.MessageViewSet, basename="exotel-sms-message")
router.register("templates", views.TemplateViewSet, basename="exotel-sms-template")
router.register("batches", views.BatchViewSet, basename="exotel-sms-batch")
router.register("dlt-entities", views.DltEntityViewSet, basename="exotel-sms-dlt-entity")
router.register("senders", views.SenderIdViewSet, basename="exotel-sms-sender")
router.register("suppressions", views.SuppressionViewSet, basename="exotel-sms-suppression")
router.register("exports", ExportViewSet, basename="exotel-sms-export")
