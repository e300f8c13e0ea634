"""Admin labels for fields whose automatic label reads badly ("Sms units", "Dlt template id").

The admin shows a form's ``Meta.labels`` for both editable and read-only fields, so the
message and template pages use forms carrying these. The models' own ``verbose_name`` stay
as they are until a migration renames them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _

FIELD_LABELS = {
    "sid": _("Exotel Sid"),
    "sms_units": _("SMS units"),
    "sms_type": _("SMS type"),
    "dlt_template_id": _("DLT template ID"),
    "dlt_entity_id": _("DLT entity ID"),
    "entity_id": _("DLT entity ID"),
    "shorten_urls": _("shorten URLs"),
    "shorten_url_params": _("shorten URL parameters"),
    "error_code": _("error code"),
}


def labelled_form(model: type[models.Model]) -> type[forms.ModelForm[Any]]:
    """A ModelForm for ``model`` whose Meta.labels covers the fields it has."""
    names = {f.name for f in model._meta.get_fields()}
    meta = type(
        "Meta",
        (),
        {
            "model": model,
            "fields": "__all__",
            "labels": {k: v for k, v in FIELD_LABELS.items() if k in names},
        },
    )
    return type(f"{model.__name__}AdminForm", (forms.ModelForm,), {"Meta": meta})
