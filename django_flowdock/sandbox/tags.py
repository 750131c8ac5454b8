"""Tags as Flowdock stores them: hashtags without ``#``, user tags as ``:user:ID`` meta tags.

A message's tags come from its ``tags`` parameter (a JSON list or one comma-separated
string) and, for chat messages, from its content. Tags are case insensitive, so a tag
given twice in different case is kept once, as first written.
"""

import re
from collections.abc import Iterable
from typing import Any

from .models import User

EVERYONE = frozenset({"everyone", "everybody", "all", "anyone", "anybody"})
# Flowdock-text's rules, simplified: a tag starts at a word boundary and runs to the
# next character that cannot be part of one.
HASHTAG = re.compile(r"(?:^|(?<=[\s(]))#([\w-]+)", re.UNICODE)
MENTION = re.compile(r"(?:^|(?<=[\s(]))@([\w-]+)", re.UNICODE)
URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)


def split_tags(value: Any) -> list[str]:
    """The ``tags`` parameter as a list: a list as given, a string split at commas."""
    if value in (None, ""):
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in items if str(item).strip()]


def normalize_tags(
    given: Iterable[str],
    *,
    users: Iterable[User],
    content: str = "",
    has_files: bool = False,
) -> list[str]:
    """Stored tags for a message with ``given`` tags and chat ``content``."""
    by_nick = {user.nick.lower(): user for user in users}
    meta: list[str] = []
    plain: list[str] = []
    mentioned: list[User] = []
    everyone = False

    def user_tag(nick: str) -> None:
        nonlocal everyone
        if nick.lower() in EVERYONE:
            everyone = True
        elif nick.lower() in by_nick:
            mentioned.append(by_nick[nick.lower()])
        else:
            # No such user: Flowdock maps user tags to ids; an unknown nick has none,
            # so it is kept as written rather than lost.
            plain.append(f"@{nick}")

    for tag in given:
        if tag.startswith("@"):
            user_tag(tag[1:])
        elif tag.startswith(":") or tag.startswith("influx:"):
            meta.append(tag)
        else:
            plain.append(tag.removeprefix("#"))
    for nick in MENTION.findall(content):
        user_tag(nick)
    plain.extend(HASHTAG.findall(content))

    for user in mentioned:
        meta += [f":user:{user.pk}", f":unread:{user.pk}"]
    if everyone:
        meta.append(":user:everyone")
        meta += [f":unread:{user.pk}" for user in by_nick.values()]
    if URL.search(content):
        meta.append(":url")
    if has_files:
        meta.append(":file")
    return _unique([*meta, *(tag for tag in plain if tag)])


def _unique(tags: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for tag in tags:
        if tag.lower() not in seen:
            seen.add(tag.lower())
            kept.append(tag)
    return kept
