"""The one door for sending: ``SmsMessage.objects.send`` and ``send_bulk``.

compose (validate) -> persist -> enqueue on commit. The admin, the REST API, the
management commands, templates and users all come through here.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import models, router, transaction

from . import logfields, scheduling, status

if TYPE_CHECKING:
    from .cancellation import CancelResult
    from .models import SmsBatch, SmsMessage, SmsTemplate

logger = logging.getLogger(__name__)
MAX_LISTED_ERRORS = 20
# Rows validated, screened and inserted at a time by send_bulk (bench/save.py: 1,000 saved
# only ~5% more, within the noise, for ten times the rows held).
INSERT_BATCH_SIZE = 100
_PER_MESSAGE_KEYS = (
    "to",
    "body",
    "sender",
    "template",
    "context",
    "dlt_template_id",
    "sms_type",
    "language",
)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def dispatch_message(pk: int, send_async: bool, using: str) -> None:
    """After commit: enqueue the task, or send in this process through the same path."""

    def run() -> None:
        if send_async:
            from .tasks import _options, send_message

            try:
                send_message.apply_async((pk,), **_options())
            except Exception:  # broker down: the row stays pending; reconcile resumes it
                logger.exception(
                    "Could not enqueue SMS %s; reconcile will resume it",
                    pk,
                    extra=logfields.fields(pk=pk),
                )
        else:
            from .sending import deliver_message, run_until_done

            run_until_done(lambda: deliver_message(pk))

    transaction.on_commit(run, using=using)


def dispatch_batch(pk: int, send_async: bool, using: str) -> None:
    def run() -> None:
        from .conf import get_settings

        if send_async:
            from .tasks import _options, send_batch

            try:
                # Several runs share the batch; claiming keeps them from overlapping.
                for _ in range(get_settings().batch_parallelism):
                    send_batch.apply_async((pk,), **_options())
            except Exception:
                logger.exception(
                    "Could not enqueue SMS batch %s; reconcile will resume it",
                    pk,
                    extra=logfields.fields(batch=pk),
                )
        else:
            from .sending import deliver_batch, run_until_done

            run_until_done(lambda: deliver_batch(pk))

    transaction.on_commit(run, using=using)


def _close_refused(reasons: dict[int, str]) -> None:
    from .gate import close

    close(reasons, status.SUPPRESSED, note="refused before sending")


class SmsMessageQuerySet(models.QuerySet["SmsMessage"]):
    def final(self) -> SmsMessageQuerySet:
        return self.filter(status__in=status.TERMINAL_STATUSES)

    def not_final(self) -> SmsMessageQuerySet:
        return self.exclude(status__in=status.TERMINAL_STATUSES)

    def delivered(self) -> SmsMessageQuerySet:
        return self.filter(status=status.SENT)

    def failed(self) -> SmsMessageQuerySet:
        return self.filter(status__in=status.FAILURE_STATUSES)

    def cancel(self, reason: str = "cancelled") -> CancelResult:
        """Cancel the messages not yet claimed by a worker; see ``cancellation.cancel``."""
        from .cancellation import cancel

        return cancel(self, reason)


class SmsMessageManager(models.Manager["SmsMessage"]):
    def get_queryset(self) -> SmsMessageQuerySet:
        return SmsMessageQuerySet(self.model, using=self._db)

    def final(self) -> SmsMessageQuerySet:
        return self.get_queryset().final()

    def not_final(self) -> SmsMessageQuerySet:
        return self.get_queryset().not_final()

    def send(
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
        encoding: str | None = None,
        shorten_urls: bool | None = None,
        shorten_url_params: Mapping[str, Any] | None = None,
        account: str | None = None,
        send_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        valid_for: timedelta | float | None = None,
        send_async: bool = True,
        language: str | None = None,
    ) -> SmsMessage:
        """Validate, save and send one SMS; returns the saved message.

        Raises ``SmsValidationError`` (nothing saved) when the input is invalid, and
        ``suppression.RecipientLimitExceeded`` (nothing saved; it carries ``retry_after``)
        when the recipient is over a ``RECIPIENT_LIMITS`` limit. A recipient the send gate
        refuses (suppressed, not allowed, vetoed) is saved with status ``suppressed`` and
        its ``status_reason``, and never sent: check ``message.status``. With
        ``send_async=False`` the message is sent in this process once the surrounding
        transaction (if any) commits, through the same code as the Celery task.

        ``send_at`` (aware datetime) schedules it; ``expires_at`` or ``valid_for`` (a
        timedelta or seconds) make it expire if not handed to Exotel by then. A message
        not due now is saved pending and left to ``release_due``: nothing is enqueued.
        """
        from .compose import Composer

        fields = Composer(account).compose(
            to,
            body,
            sender=sender,
            template=template,
            context=context,
            dlt_template_id=dlt_template_id,
            dlt_entity_id=dlt_entity_id,
            sms_type=sms_type,
            custom_field=custom_field,
            priority=priority,
            encoding_type=encoding,
            shorten_urls=shorten_urls,
            shorten_url_params=shorten_url_params,
            send_at=send_at,
            expires_at=expires_at,
            valid_for=valid_for,
            language=language,
        )
        from . import suppression

        using = self._db or router.db_for_write(self.model)
        message = self.model(**fields)
        # Over a per-recipient limit: raises RecipientLimitExceeded, nothing saved.
        refused = suppression.decide([message], single=True)
        with transaction.atomic(using=using):
            message.save(using=using)
            if refused:
                # Kept, never sent: saved and closed as suppressed with its reason.
                _close_refused({message.pk: refused[0]})
                message.status, message.status_reason = status.SUPPRESSED, refused[0]
            elif message.next_attempt_at is None:  # a scheduled one waits for release_due
                dispatch_message(message.pk, send_async, using)
        if not send_async and not transaction.get_connection(using).in_atomic_block:
            message.refresh_from_db()
        return message

    def send_bulk(
        self,
        to: Iterable[str] | None = None,
        body: str | None = None,
        *,
        messages: Iterable[Mapping[str, Any]] | None = None,
        sender: str | None = None,
        template: SmsTemplate | str | int | None = None,
        context: Mapping[str, Any] | Sequence[Any] | None = None,
        dlt_template_id: str | None = None,
        dlt_entity_id: str | None = None,
        sms_type: str | None = None,
        custom_field: str | None = None,
        priority: str | None = None,
        encoding: str | None = None,
        shorten_urls: bool | None = None,
        shorten_url_params: Mapping[str, Any] | None = None,
        account: str | None = None,
        name: str = "",
        created_by: Any = None,
        send_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        valid_for: timedelta | float | None = None,
        send_async: bool = True,
        language: str | None = None,
    ) -> SmsBatch:
        """Send to many: ``to=[...]`` with one ``body`` (or template), or ``messages=[{...}]``.

        Any size: rows are validated and inserted 100 at a time inside one transaction,
        so a single invalid entry saves nothing; iterables are streamed, not listed.
        Recipients the send gate refuses (suppressed, not allowed, vetoed, over a
        per-recipient limit) are saved with status ``suppressed`` and their
        ``status_reason``; the others are sent.
        """
        from .compose import Composer, SmsValidationError, check_batch_name
        from .models import SmsBatch

        if (to is None) == (messages is None):
            raise SmsValidationError({"to": ["Give either to=[...] or messages=[...]."]})
        if isinstance(to, str):
            raise SmsValidationError(
                {"to": ["to must be a list of numbers; for one number use send()."]}
            )
        from .db.instances import builder

        composer = Composer(account)
        build = builder(self.model)
        check_batch_name(name)
        shared: dict[str, Any] = {
            "sender": sender,
            "dlt_template_id": dlt_template_id,
            "dlt_entity_id": dlt_entity_id,
            "sms_type": sms_type,
            "custom_field": custom_field,
            "priority": priority,
            "encoding_type": encoding,
            "shorten_urls": shorten_urls,
            "shorten_url_params": shorten_url_params,
            "send_at": send_at,
            "expires_at": expires_at,
            "valid_for": valid_for,
        }
        # The batch's timing is checked once, so a bad one is one error, not one per message.
        _, timing_errors = scheduling.plan(
            "", sms_type, send_at=send_at, expires_at=expires_at, valid_for=valid_for
        )
        if timing_errors:
            raise SmsValidationError(timing_errors)
        kind = SmsBatch.KIND_STATIC if messages is None else SmsBatch.KIND_DYNAMIC
        tpl = composer.template(template) if template is not None else None
        using = self._db or router.db_for_write(self.model)
        errors: list[str] = []
        error_count = 0  # invalid messages; each lists one line per field it got wrong

        if messages is None:
            assert to is not None
            if body is None and tpl is not None:
                # Same text for all: render once; numbers are still checked one by one.
                from .compose import render_text

                try:
                    variant = composer.variant(tpl, language)
                except ValueError as exc:  # not a language code: an error, nothing saved
                    raise SmsValidationError({"language": [str(exc)]}) from None
                body = render_text(
                    variant.body if variant else tpl.body,
                    context,
                    composer.settings.dlt_max_var_length,
                )
            items: Iterable[dict[str, Any]] = (
                {"to": number, "body": body, "template": tpl, "context": context} for number in to
            )
        else:
            items = (self._message_item(m, i) for i, m in enumerate(messages))

        with transaction.atomic(using=using):
            batch = SmsBatch.objects.using(using).create(
                kind=kind,
                name=name,
                template=tpl,
                account=composer.account_alias,
                created_by=created_by if getattr(created_by, "pk", None) else None,
            )
            total = 0
            due_now = False  # any row to send at once; otherwise release_due starts it
            for chunk in _chunks(enumerate(items), INSERT_BATCH_SIZE):
                rows = []
                for index, item in chunk:
                    options = dict(shared)
                    options["language"] = language
                    for key in ("sender", "dlt_template_id", "sms_type", "language"):
                        if item.get(key) is not None:
                            options[key] = item[key]
                    try:
                        fields = composer.compose(
                            item["to"],
                            item.get("body"),
                            template=item.get("template", tpl),
                            context=item.get("context"),
                            **options,
                        )
                    except SmsValidationError as exc:
                        error_count += 1
                        if error_count <= MAX_LISTED_ERRORS:
                            for field, texts in exc.message_dict.items():
                                errors.append(f"Message {index + 1} ({field}): {' '.join(texts)}")
                        continue
                    if not error_count:
                        due_now = due_now or fields["next_attempt_at"] is None
                        rows.append(build(batch=batch, **fields))
                total += len(chunk)
                if rows and not error_count:
                    self._create_chunk(rows, batch, using)
            if error_count:
                more = error_count - MAX_LISTED_ERRORS
                if more > 0:
                    errors.append(f"... and {more} more invalid message(s).")
                transaction.set_rollback(True, using=using)
                raise SmsValidationError(
                    {"messages" if kind == SmsBatch.KIND_DYNAMIC else "to": errors}
                )
            if total == 0:
                transaction.set_rollback(True, using=using)
                raise SmsValidationError({"to": ["No recipients given."]})
            SmsBatch.objects.using(using).filter(pk=batch.pk).update(total=total)
            batch.total = total
            if due_now:
                dispatch_batch(batch.pk, send_async, using)
        return batch

    def _create_chunk(self, rows: list[SmsMessage], batch: SmsBatch, using: str) -> None:
        """Insert a chunk; the recipients the gate refuses are closed as suppressed at once.

        A fixed number of queries per chunk: one look-up of the suppression list, the
        insert, and (when some are refused) gate.close's few set-based statements.
        """
        from . import suppression

        refused = suppression.decide(rows)
        for index, reason in refused.items():
            rows[index].status_reason = reason
        created = self.model.objects.using(using).bulk_create(rows)
        if not refused:
            return
        reasons = {created[i].pk: reason for i, reason in refused.items()}
        if None in reasons:  # a database that does not return primary keys from bulk inserts
            reasons = dict(
                self.model.objects.using(using)
                .filter(
                    batch=batch,
                    status=status.PENDING,
                    status_reason__in=set(refused.values()),
                )
                .values_list("pk", "status_reason")
            )
        _close_refused(reasons)

    @staticmethod
    def _message_item(item: Mapping[str, Any], index: int) -> dict[str, Any]:
        from .compose import SmsValidationError

        if not isinstance(item, Mapping):
            raise SmsValidationError({"messages": [f"Message {index + 1} is not a mapping."]})
        unknown = set(item) - set(_PER_MESSAGE_KEYS)
        if unknown:
            raise SmsValidationError(
                {
                    "messages": [
                        f"Message {index + 1} has unknown key(s) {', '.join(sorted(unknown))}; "
                        f"allowed per message: {', '.join(_PER_MESSAGE_KEYS)}."
                    ]
                }
            )
        if "to" not in item:
            raise SmsValidationError({"messages": [f"Message {index + 1} has no 'to'."]})
        return dict(item)
