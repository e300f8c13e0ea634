"""What goes in and out of the REST API.

Output serializers list their fields explicitly (never ``__all__``), so nothing
internal -- claim tokens, callback payloads -- and no credential can leak. Input
serializers only check JSON shapes: the rules and their texts are the manager's
(``compose.py``), reported as field errors by the views.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from .. import dlt, languages
from ..conf import get_settings
from ..models import (
    DltEntity,
    SenderId,
    SmsBatch,
    SmsMessage,
    SmsTemplate,
    StatusEvent,
    Suppression,
)
from .schema import field_schema

__all__ = [
    "BatchProgressSerializer",
    "BulkSendSerializer",
    "DltEntitySerializer",
    "ErrorSerializer",
    "RenderSerializer",
    "SendMessageSerializer",
    "SenderIdSerializer",
    "SmsBatchSerializer",
    "SmsMessageDetailSerializer",
    "SmsMessageSerializer",
    "SmsTemplateSerializer",
    "StatusEventSerializer",
    "TemplatePreviewSerializer",
    "TemplateSendSerializer",
    "django_errors",
]

CONTEXT_HELP = (
    "Values for the template's placeholders: an array in order, or an object keyed by "
    '1-based position ({"1": "..."} or {"var1": "..."}).'
)
_CONTEXT_ERROR = (
    "context must be an array of values or an object keyed by position "
    '({"1": ...} or {"var1": ...}).'
)
_TEMPLATE_ERROR = "template is a template id (number) or name (string)."
LANGUAGE_HELP = (
    "Send the template's variant in this language (e.g. hi or hi-IN): its own text and DLT "
    "template id. Looked up along EXOTEL_SMS['TEMPLATE_LANGUAGE_FALLBACK'] (by default hi-IN "
    "falls back to hi), then the template's own text. Only with a template."
)
_LANGUAGE_NEEDS_TEMPLATE = "language picks a template's language variant: give a template too."


def django_errors(exc: DjangoValidationError) -> dict[str, Any]:
    """A Django ValidationError as DRF field errors, texts unchanged."""
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if field == "__all__" else field): texts
            for field, texts in exc.message_dict.items()
        }
    return {"non_field_errors": exc.messages}


# -- input shapes -----------------------------------------------------------------------


class StrictSerializer(serializers.Serializer[Any]):
    """Unknown keys are refused: a misspelt option must not be silently dropped when sending."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(key) for key in data if key not in writable)
            if unknown:
                allowed = ", ".join(sorted(writable))
                raise serializers.ValidationError(
                    {name: [f"Unknown field; allowed fields are: {allowed}."] for name in unknown}
                )
        return super().to_internal_value(data)


@field_schema({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class TemplateRefField(serializers.Field):  # type: ignore[type-arg]
    """A template by id (JSON number) or by name (JSON string)."""

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            raise serializers.ValidationError(_TEMPLATE_ERROR, code="invalid")
        return data.strip() if isinstance(data, str) else data

    def to_representation(self, value: Any) -> Any:
        return value


@field_schema({"oneOf": [{"type": "array", "items": {}}, {"type": "object"}]})
class ContextField(serializers.Field):  # type: ignore[type-arg]
    """Template values: a JSON array or object (anything else is a field error)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, (list, dict)):
            # Not self.fail(): the text holds braces that str.format would read.
            raise serializers.ValidationError(_CONTEXT_ERROR, code="invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


def _language_problem(value: str) -> str | None:
    """Why ``value`` is not a language code (the manager's text), or None."""
    try:
        languages.normalize_language(value)
    except ValueError as exc:
        return str(exc)
    return None


class LanguageField(serializers.CharField):
    """A language code (``hi``, ``hi-IN``); anything else is a field error naming it."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        problem = _language_problem(value)
        if problem:
            raise serializers.ValidationError(problem, code="invalid")
        return value


def _check_items(
    items: list[dict[str, Any]], label: str, types: Mapping[str, tuple[type, ...]]
) -> list[dict[str, Any]]:
    """Shape checks per entry of a list (fast enough for 100,000 entries)."""
    problems: list[str] = []
    for index, item in enumerate(items, start=1):
        for key, value in item.items():
            allowed = types.get(key)
            if allowed is None or value is None:
                continue  # unknown keys: the manager names them with the allowed list
            if isinstance(value, bool) or not isinstance(value, allowed):
                if key == "context":
                    problems.append(f"{label} {index}: {_CONTEXT_ERROR}")
                elif key == "template":
                    problems.append(f"{label} {index}: {_TEMPLATE_ERROR}")
                else:
                    problems.append(f"{label} {index}: {key} must be a string.")
            elif key == "language" and (problem := _language_problem(str(value))):
                problems.append(f"{label} {index} (language): {problem}")
        if isinstance(item.get("to"), int) and not isinstance(item["to"], bool):
            item["to"] = str(item["to"])
        if len(problems) >= 20:
            break
    if problems:
        raise serializers.ValidationError(problems)
    return items


_MESSAGE_TYPES: dict[str, tuple[type, ...]] = {
    "to": (str, int),
    "body": (str,),
    "sender": (str,),
    "template": (int, str),
    "context": (list, dict),
    "dlt_template_id": (str,),
    "sms_type": (str,),
    "language": (str,),
}


class BulkCapMixin:
    """At most ``EXOTEL_SMS['API_MAX_BULK']`` recipients per request, counted before any entry
    is parsed: one HTTP request must not hold a web worker for minutes."""

    bulk_fields: tuple[str, ...] = ()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            cap = get_settings().api_max_bulk
            for name in self.bulk_fields:
                items = data.get(name)
                if isinstance(items, list) and len(items) > cap:
                    raise serializers.ValidationError({name: [_too_many(len(items), cap)]})
        return super().to_internal_value(data)  # type: ignore[misc]


def _too_many(count: int, cap: int) -> str:
    return (
        f"At most {cap:,} recipients per request (EXOTEL_SMS['API_MAX_BULK']); got {count:,}. "
        "Split them over several requests, or import them where no HTTP request waits: "
        "SmsMessage.objects.send_bulk() in Python, or manage.py exotel_send --csv FILE."
    )


class _SendOptions(StrictSerializer):
    sender = serializers.CharField(required=False, help_text="Sender ID (header).")
    dlt_template_id = serializers.CharField(required=False)
    dlt_entity_id = serializers.CharField(required=False)
    sms_type = serializers.CharField(
        required=False, help_text="transactional, transactional_opt_in or promotional."
    )
    custom_field = serializers.CharField(required=False, allow_blank=True)
    priority = serializers.CharField(required=False, help_text="normal or high (OTP only).")
    encoding = serializers.CharField(required=False, help_text="plain or unicode.")
    shorten_urls = serializers.BooleanField(required=False, allow_null=True, default=None)
    shorten_url_params = serializers.DictField(required=False, allow_null=True)
    account = serializers.CharField(required=False, help_text="Alias in EXOTEL_SMS['ACCOUNTS'].")
    send_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Send at this time (ISO 8601 with offset)."
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Never send after this time: expire."
    )
    valid_for = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Seconds it may wait (from send_at or now) before it expires.",
    )
    language = LanguageField(required=False, allow_null=True, help_text=LANGUAGE_HELP)


class SendMessageSerializer(_SendOptions):
    """One SMS: a ``body``, or a ``template`` with its ``context``."""

    to = serializers.CharField(help_text="Recipient; national forms use DEFAULT_REGION.")
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    template = TemplateRefField(required=False, allow_null=True)
    context = ContextField(  # type: ignore[assignment]  # DRF pops declared fields
        required=False, allow_null=True, help_text=CONTEXT_HELP
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("language") and attrs.get("template") is None:
            raise serializers.ValidationError({"language": [_LANGUAGE_NEEDS_TEMPLATE]})
        return attrs


class BulkSendSerializer(BulkCapMixin, _SendOptions):
    """Same text to many (``to`` + ``body``/``template``) or text per recipient (``messages``)."""

    bulk_fields = ("to", "messages")

    to = serializers.ListField(child=serializers.CharField(), required=False)
    messages = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Per recipient: to, body or template + context, sender, dlt_template_id, "
        "sms_type, language.",
    )
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    template = TemplateRefField(required=False, allow_null=True)
    context = ContextField(  # type: ignore[assignment]  # DRF pops declared fields
        required=False, allow_null=True, help_text=CONTEXT_HELP
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _check_items(value, "Message", _MESSAGE_TYPES)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("template") is not None:
            return attrs
        # Without a template a language would pick nothing and be ignored: refuse it.
        messages = attrs.get("messages") or []
        if attrs.get("language") and not any(m.get("template") is not None for m in messages):
            raise serializers.ValidationError({"language": [_LANGUAGE_NEEDS_TEMPLATE]})
        problems = [
            f"Message {index} (language): {_LANGUAGE_NEEDS_TEMPLATE}"
            for index, item in enumerate(messages, start=1)
            if item.get("language") and item.get("template") is None
        ][:20]
        if problems:
            raise serializers.ValidationError({"messages": problems})
        return attrs


class TemplateSendSerializer(BulkCapMixin, _SendOptions):
    """``to`` + ``context`` sends one message; ``recipients`` sends a batch."""

    bulk_fields = ("recipients",)

    to = serializers.CharField(required=False)
    context = ContextField(  # type: ignore[assignment]  # DRF pops declared fields
        required=False, allow_null=True, help_text=CONTEXT_HELP
    )
    recipients = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="[{to, context, language}, ...]; a recipient's language overrides language.",
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate_recipients(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problems = [
            f"Recipient {index}: unknown key(s) {', '.join(sorted(map(str, extra)))}; "
            "allowed: to, context, language."
            for index, item in enumerate(value, start=1)
            if (extra := set(item) - {"to", "context", "language"})
        ][:20]
        problems += [
            f"Recipient {index} has no 'to'."
            for index, item in enumerate(value, start=1)
            if "to" not in item
        ][: 20 - len(problems)]
        if problems:
            raise serializers.ValidationError(problems)
        return _check_items(
            value,
            "Recipient",
            {"to": (str, int), "context": (list, dict), "language": (str,)},
        )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("to" in attrs) == ("recipients" in attrs):
            raise serializers.ValidationError(
                {"to": ["Give either to (one message) or recipients (a batch), not both."]}
            )
        if "recipients" in attrs and "context" in attrs:
            raise serializers.ValidationError(
                {"context": ["With recipients, give each recipient its own context."]}
            )
        return attrs


class RenderSerializer(StrictSerializer):
    context = ContextField(  # type: ignore[assignment]  # DRF pops declared fields
        required=False, allow_null=True, help_text=CONTEXT_HELP
    )


# -- output -----------------------------------------------------------------------------


class DltMatchSerializer(serializers.Serializer[Any]):
    matched = serializers.BooleanField()
    reason = serializers.CharField()


class TemplatePreviewSerializer(serializers.Serializer[Any]):
    text = serializers.CharField()
    encoding = serializers.CharField()
    segments = serializers.IntegerField()
    length = serializers.IntegerField(help_text="Septets (plain) or UTF-16 units (unicode).")
    dlt_match = DltMatchSerializer()


class CancelResultSerializer(serializers.Serializer[Any]):
    cancelled = serializers.IntegerField(help_text="Cancelled now: they will never be sent.")
    on_their_way = serializers.IntegerField(
        help_text="Already claimed by a worker or handed to Exotel: too late to cancel."
    )
    already_final = serializers.IntegerField(help_text="Already sent, failed, expired, ...")


class ErrorSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    error_code = serializers.IntegerField(required=False, allow_null=True)


class StatusEventSerializer(serializers.ModelSerializer[StatusEvent]):
    class Meta:
        model = StatusEvent
        fields = [
            "status",
            "detailed_status_code",
            "detailed_status",
            "source",
            "applied",
            "note",
            "created_at",
        ]
        read_only_fields = fields


_MESSAGE_FIELDS = [
    "id",
    "to",
    "sender",
    "body",
    "template",
    "dlt_template_id",
    "dlt_entity_id",
    "sms_type",
    "encoding",
    "segments",
    "priority",
    "custom_field",
    "shorten_urls",
    "shorten_url_params",
    "account",
    "batch",
    "sid",
    "status",
    "status_reason",
    "is_final",
    "detailed_status_code",
    "detailed_status",
    "detailed_status_description",
    "sms_units",
    "price",
    "error_code",
    "error_message",
    "attempts",
    "status_reason",
    "send_at",
    "expires_at",
    "next_attempt_at",
    "deferred_until",
    "created_at",
    "submitted_at",
    "sent_at",
    "updated_at",
]


class SmsMessageSerializer(serializers.ModelSerializer[SmsMessage]):
    is_final = serializers.BooleanField(read_only=True)
    deferred_until = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Pending and waiting (scheduled, a sending window, a retry) until then.",
    )
    detailed_status_description = serializers.CharField(read_only=True)

    class Meta:
        model = SmsMessage
        fields = _MESSAGE_FIELDS
        read_only_fields = fields


class SmsMessageDetailSerializer(SmsMessageSerializer):
    events = StatusEventSerializer(many=True, read_only=True, help_text="Oldest first.")

    class Meta(SmsMessageSerializer.Meta):
        fields = [*_MESSAGE_FIELDS, "events"]
        read_only_fields = fields


class BatchProgressSerializer(serializers.Serializer[Any]):
    total = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    final = serializers.IntegerField()
    accepted = serializers.IntegerField()
    percent_final = serializers.FloatField()
    done = serializers.BooleanField()


class SmsBatchSerializer(serializers.ModelSerializer[SmsBatch]):
    """Counts come from ``context["counts"]`` ({batch pk: {status: n}}) when the view has
    fetched them for a whole page in one query; otherwise from the batch itself."""

    counts = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = SmsBatch
        fields = [
            "id",
            "kind",
            "name",
            "template",
            "total",
            "account",
            "created_by",
            "created_at",
            "counts",
            "progress",
        ]
        read_only_fields = fields

    def _counts(self, batch: SmsBatch) -> dict[str, int]:
        known: dict[int, dict[str, int]] | None = self.context.get("counts")
        if known is not None and batch.pk in known:
            return known[batch.pk]
        cache: dict[str, int] | None = getattr(batch, "_api_counts", None)
        if cache is None:
            cache = batch.status_counts()
            batch._api_counts = cache  # type: ignore[attr-defined]
        return cache

    @field_schema({"type": "object", "additionalProperties": {"type": "integer"}})
    def get_counts(self, batch: SmsBatch) -> dict[str, int]:
        return self._counts(batch)

    @field_schema(BatchProgressSerializer)
    def get_progress(self, batch: SmsBatch) -> dict[str, Any]:
        return batch.progress(self._counts(batch))


# -- configuration rows -----------------------------------------------------------------


class CleanModelSerializer(serializers.ModelSerializer[Any]):
    """Runs the model's ``clean()`` (which DRF does not) and reports it as field errors."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        model: type[models.Model] = self.Meta.model
        instance = copy.copy(self.instance) if self.instance is not None else model()
        for name, value in attrs.items():
            setattr(instance, name, value)
        try:
            instance.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(django_errors(exc)) from None
        return {name: getattr(instance, name) for name in attrs}


class DltEntitySerializer(CleanModelSerializer):
    class Meta:
        model = DltEntity
        fields = ["id", "entity_id", "name", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class _UpperCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data).upper()


class SenderIdSerializer(CleanModelSerializer):
    # Upper-cased before the uniqueness check, as clean() stores it.
    header = _UpperCharField(
        max_length=11,
        validators=[
            UniqueValidator(
                queryset=SenderId.objects.all(), message="A sender ID with this header exists."
            )
        ],
    )
    is_promotional = serializers.BooleanField(read_only=True)

    class Meta:
        model = SenderId
        fields = [
            "id",
            "header",
            "entity",
            "description",
            "is_active",
            "is_promotional",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class SmsTemplateSerializer(CleanModelSerializer):
    placeholders = serializers.SerializerMethodField()

    class Meta:
        model = SmsTemplate
        fields = [
            "id",
            "name",
            "body",
            "dlt_template_id",
            "sms_type",
            "sender",
            "entity",
            "is_active",
            "valid_for",
            "placeholders",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        # DLT matching is exact: keep the wording's whitespace as registered.
        extra_kwargs = {"body": {"trim_whitespace": False}}

    @field_schema({"type": "array", "items": {"type": "string"}})
    def get_placeholders(self, template: SmsTemplate) -> list[str]:
        """Placeholder kinds in order, e.g. ["var", "numeric"]."""
        try:
            return [p.kind for p in dlt.parse_template(template.body)]
        except dlt.DltTemplateError:
            return []


class SuppressionSerializer(CleanModelSerializer):
    """A suppression; ``number`` in any format the app accepts, stored (and shown) in E.164."""

    class Meta:
        model = Suppression
        fields = ["id", "number", "reason", "scope", "source", "note", "created_at", "expires_at"]
        read_only_fields = ["id", "created_at"]

    def validate_number(self, value: str) -> str:
        # Normalised before the (number, scope) uniqueness check, so formats cannot duplicate.
        from .. import phone, suppression

        try:
            return suppression.normalize(value)
        except phone.InvalidNumber as exc:
            raise serializers.ValidationError(str(exc)) from None

    def create(self, validated_data: dict[str, Any]) -> Suppression:
        validated_data.setdefault("source", "api")
        return super().create(validated_data)
