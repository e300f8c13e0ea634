"""OpenAPI annotations that cost nothing when drf-spectacular (the ``openapi`` extra) is absent.

The API never needs drf-spectacular to run: these helpers return identity decorators
and empty parameter lists without it, and drf-spectacular's own objects with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

try:  # optional extra: pip install django-exotel-sms[openapi]
    from drf_spectacular import utils as _spectacular
except ImportError:  # pragma: no cover - exercised only without the extra
    _spectacular = None  # type: ignore[assignment]

__all__ = [
    "HAS_SPECTACULAR",
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "extend_schema",
    "field_schema",
    "idempotency_parameters",
    "one_of",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

HAS_SPECTACULAR = _spectacular is not None
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def _identity(obj: T) -> T:
    return obj


def extend_schema(**kwargs: Any) -> Callable[[F], F]:
    """``drf_spectacular.utils.extend_schema`` when installed, else a no-op."""
    if _spectacular is None:
        return _identity
    decorator: Callable[[F], F] = _spectacular.extend_schema(**kwargs)
    return decorator


def field_schema(schema: Any) -> Callable[[T], T]:
    """``extend_schema_field`` for a custom field class or a SerializerMethodField method."""
    if _spectacular is None:
        return _identity
    decorator: Callable[[T], T] = _spectacular.extend_schema_field(schema)  # type: ignore[assignment]
    return decorator


def idempotency_parameters() -> list[Any]:
    """The ``Idempotency-Key`` request header, documented on the sending endpoints."""
    if _spectacular is None:
        return []
    return [
        _spectacular.OpenApiParameter(
            IDEMPOTENCY_HEADER,
            type=str,
            location=_spectacular.OpenApiParameter.HEADER,
            required=False,
            description=(
                "Retrying with the same key and the same body returns the first answer "
                f"(with the header `{REPLAYED_HEADER}: true`) instead of sending again; the "
                "same key with a different body is refused with 422. Keys expire after "
                "EXOTEL_SMS['IDEMPOTENCY_KEY_TTL'] seconds."
            ),
        )
    ]


def one_of(component_name: str, serializers: list[Any]) -> Any:
    """A response that is one of several serializers (None without drf-spectacular)."""
    if _spectacular is None:
        return None
    return _spectacular.PolymorphicProxySerializer(
        component_name=component_name, serializers=serializers, resource_type_field_name=None
    )
