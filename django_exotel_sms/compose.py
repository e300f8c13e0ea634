"""Validate what a caller asked to send and turn it into message fields, before anything is saved.

Every door (manager, template, admin, REST API, management commands) ends up here, so
the rules and their error texts are the same everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.utils.module_loading import import_string

from . import dlt, encoding, languages, phone, scheduling, senders
from .conf import account_key_path, get_account, get_settings

if TYPE_CHECKING:
    from .models import SenderId, SmsTemplate, SmsTemplateVariant

SMS_TYPES = ("transactional", "transactional_opt_in", "promotional")
PRIORITIES = ("normal", "high")
ENCODINGS = ("plain", "unicode")
# Keys accepted per message in send_bulk(messages=[...]); Exotel's bulksend takes
# From, SmsType and DltTemplateId per message, everything else once per request.
MESSAGE_KEYS = frozenset(
    {
        "to",
        "body",
        "sender",
        "template",
        "context",
        "dlt_template_id",
        "sms_type",
        "language",
    }
)


class SmsValidationError(ValidationError):
    """Raised before anything is saved; ``message_dict`` maps field names to error texts."""


NUL = "\x00"
_NUL_TEXT = "contains a NUL character (\\x00), which the database cannot store."


def _max_length(model_field: str) -> int:
    from .models import SmsMessage

    field = SmsMessage._meta.get_field(model_field)
    assert isinstance(field, models.CharField) and field.max_length is not None
    return field.max_length


def text_problem(name: str, value: str, max_length: int | None = None) -> str | None:
    """Why ``value`` cannot be stored as given, or None.

    SQLite would store an over-long or NUL-holding text (and the row would be sent on to
    Exotel); PostgreSQL and MySQL would fail the INSERT. Either way: refused here.
    """
    if NUL in value:
        return f"{name} {_NUL_TEXT}"
    if max_length is not None and len(value) > max_length:
        return f"{name} is longer than {max_length} characters."
    return None


def _digits(value: str) -> bool:
    # str.isdigit() also accepts "²" and other digits Exotel would not read as such.
    return value.isascii() and value.isdigit()


def _json_problem(name: str, value: Any) -> str | None:
    """A NUL in any key or string of a JSON value (PostgreSQL's jsonb refuses them)."""
    if isinstance(value, str):
        return f"{name} {_NUL_TEXT}" if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            problem = _json_problem(name, str(key)) or _json_problem(name, item)
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for item in value:
            problem = _json_problem(name, item)
            if problem:
                return problem
    return None


def check_batch_name(name: str) -> None:
    """A batch's name fits its column (SmsValidationError otherwise)."""
    from .models import SmsBatch

    field = SmsBatch._meta.get_field("name")
    assert isinstance(field, models.CharField)
    problem = text_problem("name", str(name), field.max_length)
    if problem:
        raise SmsValidationError({"name": [problem]})


# How long a validated message's fields may be reused for another recipient: its timing
# (expiry from "now", window deferral) is then at most this much older than the row's own.
MEMO_SECONDS = 1.0
_MEMO_SIZE = 1000
_NUMBERS_SIZE = 100_000


def _indian(e164: str) -> bool:
    """``phone.is_indian`` for an already normalised number, without parsing it again:
    country calling codes are prefix-free, so "+91" starts exactly India's numbers."""
    return e164.startswith("+91")


@dataclass(frozen=True)
class _Memo:
    """A validated message, reusable for another recipient of the same class and a body
    that passes the same body checks (see ``Composer.compose``)."""

    fields: dict[str, Any]
    number_class: tuple[bool, ...]
    match_body: str | None  # the DLT template text the body must match, if any
    at: float


class Composer:
    """Validates messages; caches look-ups so a 100,000-recipient bulk costs few queries.

    In a bulk most of a message's checks give the same answer for every row: they are
    done once per distinct set of options and recipient class (Indian or not, the
    sending windows that govern it), and per distinct number and body.
    """

    def __init__(self, account: str | None = None) -> None:
        self.settings = get_settings()
        self.account_alias = account or "default"
        if self.account_alias not in self.settings.accounts:
            raise SmsValidationError(
                {
                    "account": [
                        f"Unknown Exotel account {self.account_alias!r}: add it to "
                        "EXOTEL_SMS['ACCOUNTS']."
                    ]
                }
            )
        # Only the two non-secret values: the account's dict also holds its API token,
        # which must not sit in this frame's locals (Django's DEBUG page shows them).
        self.default_sender: str | None = self.settings.accounts[self.account_alias].get(
            "DEFAULT_SENDER"
        )
        self.default_entity: str | None = self.settings.accounts[self.account_alias].get(
            "DLT_ENTITY_ID"
        )
        if getattr(import_string(self.settings.backend), "requires_credentials", False):
            # Refuse now rather than save rows that could never be sent.
            try:
                get_account(self.account_alias)
            except ImproperlyConfigured as exc:
                raise SmsValidationError({"account": [str(exc)]}) from exc
        self._senders: dict[str, SenderId | None] = {}
        self._templates: dict[object, SmsTemplate] = {}
        self._templates_by_dlt_id: dict[str, SmsTemplate | None] = {}
        self._matches: dict[tuple[str, str], dlt.MatchResult] = {}
        self._variants: dict[int, dict[str, SmsTemplateVariant]] = {}
        self._numbers: dict[str, str] = {}
        self._memo: dict[tuple[Any, ...], _Memo] = {}
        self._max_sender = _max_length("sender")
        self._match_body: str | None = None  # set by _compose: what a body was matched with

    # -- look-ups -------------------------------------------------------------------------

    def template(self, value: SmsTemplate | str | int | None) -> SmsTemplate | None:
        from .models import SmsTemplate

        if value is None or value == "":
            return None
        if isinstance(value, SmsTemplate):
            return value
        if value not in self._templates:
            lookup = {"pk": value} if isinstance(value, int) else {"name": value}
            if isinstance(value, int) and not 0 < value < 2**63:
                raise SmsValidationError({"template": [f"No SMS template with id {value}."]})
            if isinstance(value, str) and text_problem("", value, 100):
                # Cannot be a stored name (and PostgreSQL would refuse a NUL in the query).
                raise SmsValidationError({"template": [f"No SMS template named {value!r}."]})
            try:
                self._templates[value] = SmsTemplate.objects.select_related(
                    "sender", "entity", "sender__entity"
                ).get(**lookup)
            except SmsTemplate.DoesNotExist:
                raise SmsValidationError(
                    {"template": [f"No SMS template named {value!r}."]}
                ) from None
        return self._templates[value]

    def variant(self, tpl: SmsTemplate, language: str | None) -> SmsTemplateVariant | None:
        """The language variant to send (None: the template's own text); one query a template."""
        if not language:
            return None
        if tpl.pk not in self._variants:
            self._variants[tpl.pk] = languages.variants_of(tpl)
        return languages.pick_variant(self._variants[tpl.pk], language)

    def _sender_row(self, header: str) -> SenderId | None:
        from .models import SenderId

        if header not in self._senders:
            self._senders[header] = (
                SenderId.objects.select_related("entity").filter(header=header).first()
            )
        return self._senders[header]

    def _template_for_dlt_id(self, dlt_template_id: str) -> SmsTemplate | None:
        from .models import SmsTemplate

        if dlt_template_id not in self._templates_by_dlt_id:
            self._templates_by_dlt_id[dlt_template_id] = SmsTemplate.objects.filter(
                dlt_template_id=dlt_template_id
            ).first()
        return self._templates_by_dlt_id[dlt_template_id]

    def _match(self, template_body: str, text: str) -> dlt.MatchResult:
        key = (template_body, text)
        if key not in self._matches:
            if len(self._matches) > 1000:
                self._matches.clear()
            self._matches[key] = dlt.match(
                template_body, text, max_var_length=self.settings.dlt_max_var_length
            )
        return self._matches[key]

    def number(self, to: object) -> str:
        """``to`` in E.164 (``phone.InvalidNumber`` otherwise), normalised once per distinct
        value: bulk lists repeat numbers."""
        if isinstance(to, str):
            known = self._numbers.get(to)
            if known is not None:
                return known
        number = phone.normalize(to, self.settings.default_region)  # type: ignore[arg-type]
        if len(self._numbers) >= _NUMBERS_SIZE:
            self._numbers.clear()
        self._numbers[to] = number  # type: ignore[index]  # a str: normalize accepted it
        return number

    @staticmethod
    def _number_class(number: str, sms_type: str) -> tuple[bool, ...]:
        """What a message's checks read from its recipient (besides the number itself):
        Indian or not (sender and DLT rules), and which sending windows govern it."""
        return (_indian(number), *(w.governs(sms_type, number) for w in scheduling.windows()))

    # -- the rules ------------------------------------------------------------------------

    def compose(self, to: str, body: str | None = None, **options: Any) -> dict[str, Any]:
        """Model field values for one message, or SmsValidationError naming every problem.

        Keyword arguments: those of ``_compose``. A message with a given ``body`` and the
        same options as one validated less than ``MEMO_SECONDS`` ago, to a recipient of
        the same class, only has its number and its body checked; anything that fails
        goes through every rule again, so the errors are always the full ones.
        """
        key = self._memo_key(body, options)
        memo = self._memo.get(key) if key is not None else None
        if memo is not None and body is not None and time.monotonic() - memo.at < MEMO_SECONDS:
            fields = self._reuse(memo, to, body, options.get("encoding_type"))
            if fields is not None:
                return fields
        fields = self._compose(to, body, **options)
        if key is not None and body is not None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = _Memo(
                fields,
                self._number_class(fields["to"], fields["sms_type"]),
                self._match_body,
                time.monotonic(),
            )
        return fields

    @staticmethod
    def _memo_key(body: str | None, options: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The options that decide everything but the number and the body; None when they
        cannot be compared cheaply (the message is then validated in full)."""
        if body is None:
            return None
        parts: list[Any] = []
        for name, value in options.items():
            if name == "context":
                value = value is None  # only names the field an error is under
            elif isinstance(value, models.Model):  # a template: its row, not the object
                value = (type(value), value.pk)
            elif isinstance(value, Mapping):
                value = ("mapping", repr(value))
            parts.append((name, value))
        key = tuple(parts)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def _reuse(
        self, memo: _Memo, to: str, body: str, encoding_type: str | None
    ) -> dict[str, Any] | None:
        """``memo``'s fields for ``to`` and ``body`` when both pass; None to check in full."""
        try:
            number = self.number(to)
        except phone.InvalidNumber:
            return None
        fields = memo.fields
        if self._number_class(number, fields["sms_type"]) != memo.number_class:
            return None
        if body != fields["body"]:
            segments = self._body_segments(body, memo.match_body, encoding_type)
            if segments is None:
                return None
            fields = {**fields, "body": body, **segments}
        else:
            fields = dict(fields)
        fields["to"] = number
        if fields["shorten_url_params"] is not None:
            fields["shorten_url_params"] = dict(fields["shorten_url_params"])
        return fields

    def _body_segments(
        self, body: str, match_body: str | None, encoding_type: str | None
    ) -> dict[str, Any] | None:
        """Encoding and segments of a body passing every body check ``_compose`` makes
        (the same functions), or None."""
        try:
            encoding.check_body(body)
        except ValueError:
            return None
        if NUL in body:
            return None
        if match_body is not None:
            try:
                if not self._match(match_body, body).matched:
                    return None
            except dlt.DltTemplateError:
                return None
        try:
            info = encoding.count_segments(body, encoding_type)
        except ValueError:
            return None
        return {"encoding": info.encoding, "segments": info.segments}

    def _compose(
        self,
        to: str,
        body: str | None = None,
        *,
        sender: str | None = None,
        template: SmsTemplate | str | int | None = None,
        context: Mapping[str, Any] | Sequence[Any] | None = None,
        dlt_template_id: str | None = None,
        dlt_entity_id: str | None = None,
        sms_type: str | None = None,
        custom_field: str | None = None,
        priority: str | None = None,
        encoding_type: str | None = None,
        shorten_urls: bool | None = None,
        shorten_url_params: Mapping[str, Any] | None = None,
        send_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        valid_for: timedelta | float | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        """Every rule, for one message (``compose`` reuses its answers within a bulk)."""
        errors: dict[str, list[str]] = {}
        self._match_body = None
        tpl = None
        try:
            tpl = self.template(template)
        except SmsValidationError as exc:
            errors.update(exc.message_dict)

        number = ""
        try:
            number = self.number(to)
        except phone.InvalidNumber as exc:
            errors.setdefault("to", []).append(str(exc))

        template_body = tpl.body if tpl is not None else ""
        template_dlt_id = tpl.dlt_template_id if tpl is not None else ""
        if tpl is not None and language:
            try:
                variant = self.variant(tpl, language)
            except ValueError as exc:
                errors.setdefault("language", []).append(str(exc))
            else:
                if variant is not None:  # its own text and DLT id: DLT registers each language
                    template_body, template_dlt_id = variant.body, variant.dlt_template_id
        if tpl is not None:
            if not tpl.is_active:
                errors.setdefault("template", []).append(
                    f"Template {tpl.name!r} is inactive; activate it before sending."
                )
            if body is None:
                try:
                    body = render_text(template_body, context, self.settings.dlt_max_var_length)
                except SmsValidationError as exc:
                    errors.update(exc.message_dict)
            dlt_template_id = dlt_template_id or template_dlt_id or None
            sms_type = sms_type or tpl.sms_type
            if sender is None and tpl.sender_id is not None and tpl.sender is not None:
                sender = tpl.sender.header
        elif body is None and "template" not in errors:
            errors.setdefault("body", []).append("Give a body or a template.")

        if body is not None:
            try:
                encoding.check_body(body)
            except ValueError as exc:
                errors.setdefault("body", []).append(str(exc))
            if NUL in body:
                # From a context value when the body was rendered from the template.
                where = "body" if tpl is None or context is None else "context"
                errors.setdefault(where, []).append(f"The text {_NUL_TEXT}")
        # A body given with (or registered under) a DLT template must match it exactly.
        match_against = tpl
        if match_against is None and dlt_template_id and _digits(str(dlt_template_id)):
            match_against = self._template_for_dlt_id(str(dlt_template_id))
            template_body = match_against.body if match_against is not None else ""
        if body and match_against is not None and "body" not in errors and "context" not in errors:
            self._match_body = template_body
            try:
                result = self._match(template_body, body)
            except dlt.DltTemplateError as exc:  # a stored template that was never clean()ed
                result = dlt.MatchResult(False, (), str(exc).rstrip("."))
            if not result.matched:
                errors.setdefault("body" if context is None else "context", []).append(
                    f"The text does not match DLT template {match_against.name!r}: {result.reason}."
                )

        segments = None
        if body and "body" not in errors:
            if encoding_type is not None and encoding_type not in ENCODINGS:
                errors.setdefault("encoding", []).append(
                    f"encoding must be 'plain' or 'unicode', not {encoding_type!r}."
                )
            else:
                try:
                    segments = encoding.count_segments(body, encoding_type)
                except ValueError as exc:
                    errors.setdefault("encoding", []).append(str(exc))

        sender = sender or self.default_sender
        if not sender:
            errors.setdefault("sender", []).append(
                "No sender: pass sender=..., set one on the template, or set "
                f"{account_key_path(self.account_alias, 'DEFAULT_SENDER')}."
            )
        sender_problem = sender and text_problem("sender", str(sender), self._max_sender)
        if sender and not sender_problem:
            sender_problem = senders.sender_problem(
                sender, sms_type, to_india=bool(number) and _indian(number)
            )
        if sender_problem:
            errors.setdefault("sender", []).append(sender_problem)
        sender_row = self._sender_row(sender) if sender and not sender_problem else None
        if sender_row is not None and not sender_row.is_active:
            errors.setdefault("sender", []).append(f"Sender ID {sender!r} is inactive.")

        entity = dlt_entity_id
        if not entity and tpl is not None and tpl.entity_id is not None and tpl.entity:
            entity = tpl.entity.entity_id
        if not entity and sender_row is not None and sender_row.entity is not None:
            entity = sender_row.entity.entity_id
        entity = entity or self.default_entity
        if entity and not _digits(str(entity)):
            errors.setdefault("dlt_entity_id", []).append(
                f"A DLT entity id is made of digits; got {entity!r}."
            )
        if number and not entity and self.settings.require_dlt_for_india and _indian(number):
            errors.setdefault("dlt_entity_id", []).append(
                f"Messages to Indian numbers ({number}) need a DLT entity id: pass "
                "dlt_entity_id=..., set an entity on the template or on the sender ID, or set "
                f"{account_key_path(self.account_alias, 'DLT_ENTITY_ID')}."
            )
        if dlt_template_id and not _digits(str(dlt_template_id)):
            errors.setdefault("dlt_template_id", []).append(
                f"A DLT template id is made of digits; got {dlt_template_id!r}."
            )
        if sms_type and sms_type not in SMS_TYPES:
            errors.setdefault("sms_type", []).append(
                f"sms_type must be one of {', '.join(SMS_TYPES)}; got {sms_type!r}."
            )
        if priority and priority not in PRIORITIES:
            errors.setdefault("priority", []).append(
                f"priority must be 'normal' or 'high'; got {priority!r}."
            )
        # Every text column this message fills, against the model's own max_length.
        for name, value in (
            ("dlt_template_id", dlt_template_id),
            ("dlt_entity_id", entity),
            ("custom_field", custom_field),
        ):
            if value is not None and name not in errors:
                problem = text_problem(name, str(value), _max_length(name))
                if problem:
                    errors.setdefault(name, []).append(problem)
        if shorten_url_params is not None:
            problem = _shorten_url_params_problem(shorten_url_params)
            if problem:
                errors.setdefault("shorten_url_params", []).append(problem)
        timing, timing_errors = scheduling.plan(
            number,
            sms_type,
            send_at=send_at,
            expires_at=expires_at,
            valid_for=valid_for,
            template=tpl,
        )
        errors.update(timing_errors)
        if errors:
            raise SmsValidationError(errors)
        assert body is not None and segments is not None and timing is not None
        return {
            **timing.fields(),
            "to": number,
            "body": body,
            "sender": sender,
            "template": tpl,
            "dlt_template_id": str(dlt_template_id or ""),
            "dlt_entity_id": str(entity or ""),
            "sms_type": sms_type or "",
            "encoding": segments.encoding,
            "segments": segments.segments,
            "priority": priority or "",
            "custom_field": "" if custom_field is None else str(custom_field),
            "shorten_urls": shorten_urls,
            "shorten_url_params": dict(shorten_url_params) if shorten_url_params else None,
            "account": self.account_alias,
        }


def _shorten_url_params_problem(params: Any) -> str | None:
    """What Exotel's form needs (the client's own check), and nothing jsonb cannot store."""
    from .client import shorten_url_params_form
    from .exceptions import ExotelRequestError

    try:
        shorten_url_params_form(params)
    except ExotelRequestError as exc:
        return str(exc)
    return _json_problem("shorten_url_params", dict(params))


def render(
    tpl: SmsTemplate,
    context: Mapping[str, Any] | Sequence[Any] | None,
    max_var_length: int,
) -> str:
    """Fill a template's placeholders; SmsValidationError (key "context") when they don't fit."""
    return render_text(tpl.body, context, max_var_length)


def render_text(
    template_body: str,
    context: Mapping[str, Any] | Sequence[Any] | None,
    max_var_length: int,
) -> str:
    """``render`` for a given template text (the template's own, or a language variant's)."""
    try:
        return dlt.render(template_body, context or [], max_var_length=max_var_length)
    except (ValueError, TypeError) as exc:  # TypeError: context is a str or not a collection
        raise SmsValidationError({"context": [str(exc)]}) from exc
