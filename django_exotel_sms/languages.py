"""Template language variants: which variant a ``language`` picks, through a fallback chain.

``hi-IN`` tries the ``hi-IN`` variant, then what ``EXOTEL_SMS["TEMPLATE_LANGUAGE_FALLBACK"]``
lists for it (by default just its primary subtag, ``hi``), then the template's own text.
Codes compare case-insensitively; ``_`` is read as ``-``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .conf import get_settings

if TYPE_CHECKING:
    from .models import SmsTemplate, SmsTemplateVariant

_CODE_RE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{1,8})*$")


def normalize_language(code: str) -> str:
    """``"hi_IN"`` -> ``"hi-in"``; ValueError for what is not a language code."""
    value = str(code).strip().replace("_", "-").lower()
    if not _CODE_RE.match(value):
        raise ValueError(f"{code!r} is not a language code (e.g. hi, en or hi-IN).")
    return value


def fallback_chain(
    language: str, fallbacks: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """The variant languages to try for ``language``, in order (the template's text follows)."""
    if fallbacks is None:
        fallbacks = get_settings().template_language_fallback
    code = normalize_language(language)
    table = {normalize_language(k): v for k, v in fallbacks.items()}
    if code in table:
        nexts = [normalize_language(each) for each in table[code]]
    else:
        nexts = [code.split("-")[0]] if "-" in code else []
    chain: list[str] = []
    for each in (code, *nexts):
        if each not in chain:
            chain.append(each)
    return chain


def pick_variant(
    variants: Mapping[str, SmsTemplateVariant], language: str | None
) -> SmsTemplateVariant | None:
    """The first variant along the chain, or None for the template's own text."""
    if not language:
        return None
    for code in fallback_chain(language):
        if code in variants:
            return variants[code]
    return None


def variants_of(template: SmsTemplate) -> dict[str, SmsTemplateVariant]:
    """One query: the template's variants by normalised language code."""
    return {v.language.replace("_", "-").lower(): v for v in template.variants.all()}
