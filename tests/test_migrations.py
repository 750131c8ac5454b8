"""The shipped migrations match the models on every Django version the matrix runs."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_apps_migrations_match_its_models(capsys):
    # A new Django release can change what a field deconstructs to; --check exits non-zero
    # (SystemExit) when makemigrations would write a migration for users to find.
    call_command("makemigrations", "django_flowdock", "--check", "--dry-run", verbosity=1)
    assert "No changes detected" in capsys.readouterr().out
