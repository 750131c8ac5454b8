"""The shipped French catalogue: compiled, complete, and used by the app's pages."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

import pytest
from django.urls import reverse

import django_flowdock

LC_MESSAGES = Path(django_flowdock.__file__).parent / "locale" / "fr" / "LC_MESSAGES"


def po_entries(path: Path) -> dict[str, str]:
    """msgid -> msgstr of a catalogue written by ``makemessages --no-wrap``."""
    entries, msgid = {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("msgid "):
            msgid = ast.literal_eval(line[len("msgid ") :])
        elif line.startswith(("msgstr ", "msgstr[0] ")) and msgid:
            entries[msgid] = ast.literal_eval(line.split(" ", 1)[1])
    return entries


def test_every_french_string_is_translated_and_compiled():
    entries = po_entries(LC_MESSAGES / "django.po")
    assert len(entries) > 100
    assert [msgid for msgid, msgstr in entries.items() if not msgstr] == []
    with (LC_MESSAGES / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    # A .po edited without running compilemessages leaves the .mo behind.
    stale = [msgid for msgid, msgstr in entries.items() if compiled.gettext(msgid) != msgstr]
    assert stale == []


@pytest.mark.django_db
def test_a_page_of_the_app_renders_in_french(admin_client, settings):
    settings.LANGUAGE_CODE = "fr"
    response = admin_client.get(reverse("django_flowdock:setup"))
    assert response.status_code == 400
    assert "Aucun flow indiqué" in response.content.decode()
