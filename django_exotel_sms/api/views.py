"""The REST API's viewsets. Sending goes through ``SmsMessage.objects`` -- the one door.

Authentication is the project's (``DEFAULT_AUTHENTICATION_CLASSES``); permissions are
ours (see ``permissions.py``) unless ``EXOTEL_SMS['API_PERMISSION_CLASSES']`` is set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, ProtectedError, QuerySet
from django.http import Http404
from rest_framework import mixins, serializers, viewsets
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, Throttled
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from .. import dlt, encoding, phone, ratelimit, reconcile, suppression
from ..compose import SmsValidationError
from ..conf import get_settings
from ..exceptions import ExotelError
from ..models import DltEntity, SenderId, SmsBatch, SmsMessage, SmsTemplate, Suppression
from ..querystring import MAX_ID, whole_number
from ..suppression import RecipientLimitExceeded
from . import permissions
from .filters import MessageFilter
from .idempotency import idempotent
from .pagination import NewestFirstPagination, OldestFirstPagination
from .schema import extend_schema, idempotency_parameters, one_of
from .serializers import (
    BulkSendSerializer,
    CancelResultSerializer,
    DltEntitySerializer,
    ErrorSerializer,
    RenderSerializer,
    SenderIdSerializer,
    SendMessageSerializer,
    SmsBatchSerializer,
    SmsMessageDetailSerializer,
    SmsMessageSerializer,
    SmsTemplateSerializer,
    SuppressionSerializer,
    TemplatePreviewSerializer,
    TemplateSendSerializer,
)

__all__ = [
    "BatchViewSet",
    "DltEntityViewSet",
    "MessageViewSet",
    "SenderIdViewSet",
    "TemplateViewSet",
]

logger = logging.getLogger(__name__)

ADD_MESSAGE = "django_exotel_sms.add_smsmessage"
CHANGE_MESSAGE = "django_exotel_sms.change_smsmessage"
_SEND_OPTIONS = (
    "sender",
    "dlt_template_id",
    "dlt_entity_id",
    "sms_type",
    "custom_field",
    "priority",
    "encoding",
    "shorten_urls",
    "shorten_url_params",
    "account",
    "send_at",
    "expires_at",
    "valid_for",
    "language",
)


@contextmanager
def manager_errors() -> Iterator[None]:
    """The manager's errors as DRF's: field errors with the same texts; 429 over a limit."""
    try:
        yield
    except SmsValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from None
    except RecipientLimitExceeded as exc:
        # DRF answers 429 with Retry-After (whole seconds, rounded up).
        raise Throttled(wait=math.ceil(exc.retry_after), detail=str(exc)) from None


def _options(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in _SEND_OPTIONS if data.get(name) is not None}


def _created_by(request: Request) -> Any:
    user = request.user
    return user if user is not None and user.is_authenticated else None


class SmsApiViewSet(viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Shared plumbing: configurable permissions; per-action permissions where needed."""

    action_permissions: dict[str, list[str]] = {}

    def get_permissions(self) -> list[BasePermission]:
        return [cls() for cls in permissions.permission_classes()]

    def get_object(self) -> Any:
        # An id no row can have is a 404 like any unknown id, before any query: SQLite
        # cannot bind an integer wider than 64 bits (a 500 on Django < 5.0).
        raw = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        if whole_number(str(raw), 1, MAX_ID) is None:
            raise Http404
        return super().get_object()

    def _batch_response(self, batch: SmsBatch) -> Response:
        data = SmsBatchSerializer(batch, context=self.get_serializer_context()).data
        return Response(data, status=http.HTTP_201_CREATED)

    def _message_response(self, message: SmsMessage) -> Response:
        data = SmsMessageDetailSerializer(message, context=self.get_serializer_context()).data
        return Response(data, status=http.HTTP_201_CREATED)

    def _input(self) -> Any:
        """The request body checked by this action's (input) serializer."""
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class ProtectedDeleteMixin:
    """Deleting a row others still point at is a 409 naming them, not a 500."""

    def perform_destroy(self, instance: Any) -> None:
        try:
            instance.delete()
        except ProtectedError as exc:
            used_by = sorted({str(obj._meta.verbose_name_plural) for obj in exc.protected_objects})
            raise _Conflict(
                f"{instance} is still used by {', '.join(used_by)}; change or delete those first."
            ) from None


class _Conflict(APIException):
    status_code = http.HTTP_409_CONFLICT
    default_code = "protected"


class SmsModelViewSet(ProtectedDeleteMixin, SmsApiViewSet, viewsets.ModelViewSet):  # type: ignore[type-arg]
    """CRUD for the configuration rows."""


# -- messages ---------------------------------------------------------------------------


@extend_schema(tags=["SMS messages"])
class MessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SmsApiViewSet):
    """Messages: list (filters, cursor pages), retrieve (with history), send, bulk, refresh."""

    queryset = SmsMessage.objects.all()
    serializer_class = SmsMessageSerializer
    pagination_class = NewestFirstPagination
    filter_backends = [MessageFilter]
    action_permissions = {
        "create": [ADD_MESSAGE],
        "bulk": [ADD_MESSAGE],
        "refresh": ["django_exotel_sms.change_smsmessage"],
        "cancel": [CHANGE_MESSAGE],
    }

    def get_queryset(self) -> QuerySet[SmsMessage]:
        qs: QuerySet[SmsMessage] = SmsMessage.objects.all()
        if self.action in ("retrieve", "refresh"):
            qs = qs.prefetch_related("events")
        return qs

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        # Input serializers for the sending actions (the browsable API's forms use them).
        classes: dict[str, type[serializers.BaseSerializer[Any]]] = {
            "create": SendMessageSerializer,
            "bulk": BulkSendSerializer,
            "retrieve": SmsMessageDetailSerializer,
            "refresh": SmsMessageDetailSerializer,
        }
        return classes.get(self.action or "", SmsMessageSerializer)

    @extend_schema(
        request=SendMessageSerializer,
        responses={201: SmsMessageDetailSerializer},
        parameters=idempotency_parameters(),
        summary="Send one SMS",
    )
    @idempotent("messages-create")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._input()
        with manager_errors():
            message = SmsMessage.objects.send(
                data["to"],
                data.get("body"),
                template=data.get("template"),
                context=data.get("context"),
                **_options(data),
            )
        return self._message_response(message)

    @extend_schema(
        request=BulkSendSerializer,
        responses={201: SmsBatchSerializer},
        parameters=idempotency_parameters(),
        summary="Send to many: one batch",
    )
    @action(detail=False, methods=["post"])
    @idempotent("messages-bulk")
    def bulk(self, request: Request) -> Response:
        data = self._input()
        with manager_errors():
            batch = SmsMessage.objects.send_bulk(
                data.get("to"),
                data.get("body"),
                messages=data.get("messages"),
                template=data.get("template"),
                context=data.get("context"),
                name=data.get("name", ""),
                created_by=_created_by(request),
                **_options(data),
            )
        return self._batch_response(batch)

    @extend_schema(
        request=None,
        responses={
            200: SmsMessageDetailSerializer,
            429: ErrorSerializer,
            502: ErrorSerializer,
        },
        summary="Ask Exotel for this message's status now",
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        message = self.get_object()
        try:
            reconcile.refresh_message(message, wait=False)
        except ratelimit.RateLimited as exc:
            # Never hold a web worker until the account's rate frees a slot.
            raise Throttled(
                wait=exc.retry_after,
                detail="The Exotel account's request rate is used up; try again later.",
            ) from None
        except ExotelError as exc:
            # ExotelError texts never hold credentials (exceptions.py guarantees it).
            logger.warning("Refreshing SMS %s failed: %s", message.pk, exc)
            return Response(
                {
                    "detail": f"Could not get this message's status from Exotel: {exc}",
                    "error_code": getattr(exc, "code", None),
                },
                status=http.HTTP_502_BAD_GATEWAY,
            )
        except ImproperlyConfigured as exc:  # names the settings key, never its value
            return Response(
                {"detail": f"Exotel is not configured: {exc}", "error_code": None},
                status=http.HTTP_502_BAD_GATEWAY,
            )
        message = self.get_queryset().get(pk=message.pk)
        return Response(self.get_serializer(message).data)

    @extend_schema(
        request=None,
        responses={200: CancelResultSerializer},
        summary="Cancel it unless a worker already has it",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        message = self.get_object()
        result = SmsMessage.objects.filter(pk=message.pk).cancel()
        return Response(result.as_dict())


# -- templates --------------------------------------------------------------------------


@extend_schema(tags=["SMS templates"])
class TemplateViewSet(SmsModelViewSet):
    """DLT templates: CRUD, ``render`` (preview) and ``send``."""

    queryset = SmsTemplate.objects.all()
    serializer_class = SmsTemplateSerializer
    pagination_class = OldestFirstPagination
    action_permissions = {
        "render": ["django_exotel_sms.view_smstemplate"],
        "send": [ADD_MESSAGE],
    }

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        classes: dict[str, type[serializers.BaseSerializer[Any]]] = {
            "render": RenderSerializer,
            "send": TemplateSendSerializer,
        }
        return classes.get(self.action or "", SmsTemplateSerializer)

    @extend_schema(
        request=RenderSerializer,
        responses={200: TemplatePreviewSerializer},
        summary="Preview: rendered text, encoding, segments and DLT match",
    )
    @action(detail=True, methods=["post"])
    def render(self, request: Request, pk: str | None = None) -> Response:
        template = self.get_object()
        context = self._input().get("context")
        max_len = get_settings().dlt_max_var_length
        try:
            text = dlt.render(template.body, context or [], max_var_length=max_len)
            info = encoding.count_segments(text)
            result = dlt.match(template.body, text, max_var_length=max_len)
        except (ValueError, TypeError) as exc:
            raise serializers.ValidationError({"context": [str(exc)]}) from None
        return Response(
            {
                "text": text,
                "encoding": info.encoding,
                "segments": info.segments,
                "length": info.length,
                "dlt_match": {"matched": result.matched, "reason": result.reason},
            }
        )

    @extend_schema(
        request=TemplateSendSerializer,
        responses={
            201: one_of("TemplateSendResult", [SmsMessageDetailSerializer, SmsBatchSerializer])
        },
        parameters=idempotency_parameters(),
        summary="Send with this template: to one (to + context) or many (recipients)",
    )
    @action(detail=True, methods=["post"])
    @idempotent("templates-send")
    def send(self, request: Request, pk: str | None = None) -> Response:
        template = self.get_object()
        data = self._input()
        with manager_errors():
            if "recipients" in data:
                messages = (
                    {
                        "to": item["to"],
                        "template": template,
                        "context": item.get("context"),
                        "language": item.get("language"),  # None: the request's language
                    }
                    for item in data["recipients"]
                )
                batch = SmsMessage.objects.send_bulk(
                    messages=messages,
                    template=template,
                    name=data.get("name", ""),
                    created_by=_created_by(request),
                    **_options(data),
                )
                return self._batch_response(batch)
            message = SmsMessage.objects.send(
                data["to"], template=template, context=data.get("context"), **_options(data)
            )
        return self._message_response(message)


# -- batches ----------------------------------------------------------------------------


@extend_schema(tags=["SMS batches"])
class BatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SmsApiViewSet):
    """Bulk sends with their counts per status and progress."""

    queryset = SmsBatch.objects.all()
    serializer_class = SmsBatchSerializer
    pagination_class = NewestFirstPagination
    action_permissions = {"cancel": [CHANGE_MESSAGE]}

    @extend_schema(
        request=None,
        responses={200: CancelResultSerializer},
        summary="Cancel its messages no worker has claimed yet",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        return Response(self.get_object().cancel().as_dict())

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        batches = [*(queryset if page is None else page)]
        # One grouped query for the whole page, not one per batch.
        context = {**self.get_serializer_context(), "counts": self._counts_for(batches)}
        data = SmsBatchSerializer(batches, many=True, context=context).data
        if page is not None:
            return self.get_paginated_response(data)
        return Response(data)

    @staticmethod
    def _counts_for(batches: Sequence[SmsBatch]) -> dict[int, dict[str, int]]:
        counts: dict[int, dict[str, int]] = {batch.pk: {} for batch in batches}
        if not counts:
            return counts
        rows = (
            SmsMessage.objects.filter(batch_id__in=list(counts))
            .values("batch_id", "status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in rows:
            counts[row["batch_id"]][row["status"]] = row["n"]
        return counts


# -- DLT entities and sender IDs --------------------------------------------------------


@extend_schema(tags=["DLT entities"])
class DltEntityViewSet(SmsModelViewSet):
    queryset = DltEntity.objects.all()
    serializer_class = DltEntitySerializer
    pagination_class = OldestFirstPagination


@extend_schema(tags=["Sender IDs"])
class SenderIdViewSet(SmsModelViewSet):
    queryset = SenderId.objects.all()
    serializer_class = SenderIdSerializer
    pagination_class = OldestFirstPagination


# -- suppressions -------------------------------------------------------------------------


@extend_schema(tags=["Suppressions"])
class SuppressionViewSet(SmsModelViewSet):
    """Numbers never sent to (or not for promotional SMS). ``?number=`` takes any format."""

    queryset = Suppression.objects.all()
    serializer_class = SuppressionSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self) -> QuerySet[Suppression]:
        qs = super().get_queryset()
        params = self.request.query_params
        if params.get("number"):
            try:
                qs = qs.filter(number=suppression.normalize(params["number"]))
            except phone.InvalidNumber:
                qs = qs.none()
        for name in ("reason", "scope", "source"):
            if params.get(name):
                qs = qs.filter(**{name: params[name]})
        return qs
