"""Unsaved model instances for a bulk insert, built without ``Model.__init__`` per row.

``Model.__init__`` walks every field for every row (about a third of building and
inserting a 10,000-row bulk). A row for ``bulk_create`` only needs each concrete field's
value, so the defaults are computed once and copied. Used only where that is the whole
story: no ``pre_init``/``post_init`` receivers and no callable defaults (then each row
goes through ``Model.__init__`` as usual).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

M = TypeVar("M", bound=models.Model)


def builder(model: type[M]) -> Callable[..., M]:
    """``model(**fields)``, or an equivalent that skips ``Model.__init__``'s field walk."""
    concrete = model._meta.concrete_fields
    if (
        pre_init.has_listeners(model)
        or post_init.has_listeners(model)
        or any(f.has_default() and callable(f.default) for f in concrete)
    ):
        return model
    defaults = {f.attname: f.get_default() for f in concrete}
    relations = {f.name for f in concrete if f.is_relation}
    plain = {f.attname for f in concrete} - relations

    def build(**fields: Any) -> M:
        unknown = fields.keys() - plain - relations
        if unknown:
            raise TypeError(f"{model.__name__} got unexpected field(s): {', '.join(unknown)}")
        obj = model.__new__(model)
        obj._state = ModelState()
        values = obj.__dict__
        values.update(defaults)
        for name, value in fields.items():
            if name in relations:
                setattr(obj, name, value)  # the descriptor sets <name>_id and its cache
            else:
                values[name] = value
        return obj

    return build
