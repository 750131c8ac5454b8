"""Showing posted HTML the way Flowdock does, minus anything that could run."""

import html

from django import template
from django.utils.safestring import SafeString, mark_safe

from ..sanitize import LINK_TAGS, sanitize_html

register = template.Library()


@register.filter
def body_html(value: str, cids: dict[str, str] | None = None) -> SafeString:
    """Bodies may hold any harmless markup; ``cid:`` images point to their attachment."""
    return mark_safe(sanitize_html(value, cids=cids))  # noqa: S308 - sanitized just above


@register.filter
def link_html(value: str) -> SafeString:
    """Titles and field values may hold links only."""
    return mark_safe(sanitize_html(value, LINK_TAGS))  # noqa: S308 - sanitized just above


@register.filter
def plain_text(value: str) -> str:
    """The text a title or label holds, as :func:`link_html` shows it but without its
    links: for one-line places such as the thread list. Escaped once, by the template."""
    return html.unescape(sanitize_html(value, frozenset()))


@register.filter
def initial(name: str) -> str:
    return (name or "?").strip()[:1].upper()


@register.filter
def get_item(mapping: dict, key: str) -> object:
    """For keys templates cannot spell, such as schema.org's ``@type``."""
    return mapping.get(key) if isinstance(mapping, dict) else None


#: Bodies longer than this start collapsed, with a "Show more" button.
LONG_BODY = 1200


@register.filter
def is_long(value: str) -> bool:
    return (
        len(value or "") > LONG_BODY or (value or "").count("<p") + (value or "").count("<br") > 12
    )
