"""Template preview: what a template gives with sample values, and what it costs to send.

Values that break a rule are still put in place, so the page can show the text, its
segments and exactly why DLT scrubbing would reject it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminTextInputWidget
from django.utils.translation import gettext_lazy as _

from .. import dlt, encoding
from ..conf import get_settings

ENCODING_LABELS = {"plain": "GSM-7", "unicode": "UCS-2 (Unicode)"}


@dataclass(frozen=True)
class Preview:
    text: str
    error: str  # why the values cannot be rendered; empty when they can
    segments: encoding.SegmentInfo | None
    match: dlt.MatchResult | None

    @property
    def encoding_label(self) -> str:
        return ENCODING_LABELS.get(self.segments.encoding, "") if self.segments else ""


def substitute(template_body: str, values: Sequence[str]) -> str:
    """Put values in place without checking them."""
    parts: list[str] = []
    pos = 0
    for placeholder, value in zip(dlt.parse_template(template_body), values, strict=False):
        parts += (template_body[pos : placeholder.start], value)
        pos = placeholder.end
    parts.append(template_body[pos:])
    return "".join(parts)


def preview(template_body: str, values: Sequence[str]) -> Preview:
    max_len = get_settings().dlt_max_var_length
    try:
        dlt.validate_template(template_body)
    except dlt.DltTemplateError as exc:
        return Preview("", str(exc), None, None)
    try:
        text = dlt.render(template_body, list(values), max_var_length=max_len)
        error = ""
    except dlt.DltRenderError as exc:
        text, error = substitute(template_body, values), str(exc)
    return Preview(
        text=text,
        error=error,
        segments=encoding.count_segments(text),
        match=dlt.match(template_body, text, max_var_length=max_len),
    )


class VariablesForm(forms.Form):
    """One input per placeholder, labelled with its position and kind."""

    def __init__(
        self, placeholders: Sequence[dlt.Placeholder], data: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(data)
        self.placeholders = list(placeholders)
        for position, placeholder in enumerate(self.placeholders, start=1):
            self.fields[f"var{position}"] = forms.CharField(
                label=_("Variable %(n)s %(tag)s") % {"n": position, "tag": placeholder.tag},
                required=False,
                strip=False,
                help_text=dlt_kind_help(placeholder.kind),
                widget=AdminTextInputWidget(),
            )

    def values(self) -> list[str]:
        return [
            self.cleaned_data.get(f"var{i}") or "" for i in range(1, len(self.placeholders) + 1)
        ]


class TestSendForm(VariablesForm):
    to = forms.CharField(
        label=_("Send to"),
        max_length=32,
        help_text=_("A phone number; national numbers use the default region."),
        widget=AdminTextInputWidget(),
    )
    send_at = forms.DateTimeField(
        label=_("Send at"),
        required=False,
        help_text=_("Optional: schedule it (e.g. 2026-03-03 09:00, in the site's time zone)."),
    )
    expires_at = forms.DateTimeField(
        label=_("Expires at"),
        required=False,
        help_text=_("Optional: never send it after this time."),
    )


_KIND_HELP = {
    "var": _("any text"),
    "numeric": _("digits only"),
    "alphanumeric": _("letters, digits and spaces"),
    "url": _("a link starting with http://, https:// or www."),
    "cbn": _("a call-back number"),
    "email": _("an email address"),
}


def dlt_kind_help(kind: str) -> str:
    return str(_KIND_HELP.get(kind, ""))
