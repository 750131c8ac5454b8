"""Every ```python block of docs/*.md and README.md runs as written, or is compiled.

Each block says what it is with an HTML comment on the last non-blank line before its
fence (invisible on the rendered page; inside a list item, leave a blank line between
them, or Markdown wraps both in a paragraph). A block without one fails this file:

``<!-- example: test -->``
    A complete test module for a project's own suite. Written to a temporary file
    (padded so its line numbers are the page's) and run with pytest against
    ``tests.settings``.
``<!-- example: script -->``
    Code a reader runs as it stands (in a shell, a module): executed top to bottom on
    the test database, in a transactional test with locmem delivery.
``<!-- example: models -->``
    A ``models.py``: its models are defined in an isolated app registry, and Django's
    model checks and django-flowdock's (``checks.check_model``) find no error or
    warning in them.
``<!-- example: config -->``
    Lines of ``settings.py`` or ``urls.py``: executed on top of the ``settings.py`` of a
    fresh ``startproject``; ``FLOWDOCK`` must pass django-flowdock's settings checks
    (known keys, valid values), ``INSTALLED_APPS`` and ``MIDDLEWARE`` entries must
    import, ``urlpatterns`` entries must be URL patterns. The config blocks of the two
    pages a new project follows (README.md, installation.md), applied in order, must
    leave those checks with nothing to say.
``<!-- example: fragment -->``
    A partial snippet (``...`` for elided code, names from elsewhere on the page):
    only compiled.

Examples import the reader's models from ``helpdesk.models`` (the app is named like the
example project's); here that module re-exports the test app's ``Ticket`` and ``Reply``, which are
the quick start's models (plus an assignee and the actions of actions.md).

All test and script blocks run in one pytest subprocess, so the suite pays for one
start-up; a failure names the page and line of the block.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import models
from django.test import override_settings
from django.test.utils import isolate_apps
from django.urls import URLPattern, URLResolver
from django.utils.module_loading import import_string

from django_flowdock.checks import (
    check_model,
    check_setting_values,
    check_settings,
    check_sqlite_delivery,
)
from django_flowdock.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
KINDS = {"test", "script", "models", "config", "fragment"}
#: Pages a new project follows from ``startproject``: their config must satisfy the checks.
SETUP_PAGES = ["README.md", "docs/installation.md"]

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
MARKER = re.compile(r"^[ \t]*<!--[ \t]*example:[ \t]*(?P<kind>[\w-]+)[ \t]*-->[ \t]*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository, e.g. "docs/actions.md"
    line: int  # of the opening fence
    kind: str | None
    code: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def padded(self) -> str:
        """The code, with its line numbers those of the page."""
        return "\n" * self.line + self.code

    def compiled(self):
        return compile(self.padded, str(ROOT / self.page), "exec", dont_inherit=True)

    @property
    def module_name(self) -> str:
        stem = re.sub(r"\W", "_", Path(self.page).stem)
        return f"test_{stem}_md_{self.line}"


def parse(page: str, text: str) -> tuple[list[Block], list[str]]:
    """The ```python blocks of one page, and the markers that precede no such block."""
    lines = text.splitlines()

    def next_filled(index: int, step: int) -> str:
        index += step
        while 0 <= index < len(lines) and not lines[index].strip():
            index += step
        return lines[index] if 0 <= index < len(lines) else ""

    blocks: list[Block] = []
    stray: list[str] = []
    index = 0
    while index < len(lines):
        following = FENCE.match(next_filled(index, 1))
        if MARKER.match(lines[index]) and not (following and following["lang"] == "python"):
            stray.append(f"{page}:{index + 1}")
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if opening["lang"] == "python":
            marker = MARKER.match(next_filled(index, -1))
            indent = len(opening["indent"])
            code = "".join(line[indent:] + "\n" for line in lines[index + 1 : end])
            blocks.append(Block(page, index + 1, marker["kind"] if marker else None, code))
        index = end + 1
    return blocks, stray


def read_blocks() -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    stray: list[str] = []
    for path in PAGES:
        found, markers = parse(path.relative_to(ROOT).as_posix(), path.read_text("utf-8"))
        blocks += found
        stray += markers
    return blocks, stray


BLOCKS, STRAY_MARKERS = read_blocks()


def of_kind(*kinds: str) -> list:
    return [pytest.param(b, id=str(b)) for b in BLOCKS if b.kind in kinds]


def test_every_python_block_says_what_kind_of_example_it_is():
    unmarked = [
        f"{block}: put <!-- example: KIND --> on the line before the fence "
        f"(KIND: {', '.join(sorted(KINDS))}; see tests/test_docs_examples.py)"
        for block in BLOCKS
        if block.kind not in KINDS
    ]
    stray = [
        f"{where}: this marker is not right before a ```python fence" for where in STRAY_MARKERS
    ]
    assert not unmarked + stray, "\n".join(unmarked + stray)


@pytest.mark.parametrize("block", of_kind(*KINDS))
def test_example_compiles(block):
    try:
        block.compiled()
    except SyntaxError as exc:
        pytest.fail(f"{block.page}:{exc.lineno}: {exc.msg}")


def test_what_the_examples_import_from_django_flowdock_is_in_the_reference():
    reference = (ROOT / "docs" / "reference.md").read_text("utf-8")
    documented = re.findall(r"^::: ([\w.]+)", reference, re.MULTILINE)
    documented += re.findall(r"^#+ `([\w.]+)`", reference, re.MULTILINE)
    missing = []
    for block in BLOCKS:
        for node in ast.walk(ast.parse(block.padded)):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            missing += [
                f"{block.page}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] == "django_flowdock"
                and not any(
                    name == entry or name.startswith(entry + ".") or entry.startswith(name + ".")
                    for entry in documented
                )
            ]
    assert not missing, "Imported by an example, missing from docs/reference.md:\n" + "\n".join(
        missing
    )


# models


@pytest.mark.parametrize("block", of_kind("models"))
def test_models_example_passes_the_model_checks(block):
    with isolate_apps("tests.testapp"):
        namespace = {"__name__": "tests.testapp.docs_example"}
        exec(block.compiled(), namespace)
        defined = [
            value
            for value in namespace.values()
            if isinstance(value, type)
            and issubclass(value, models.Model)
            and value.__module__ == namespace["__name__"]
        ]
        assert defined, f"{block}: defines no model"
        found = [
            f"{message.id}: {message.msg}"
            for model in defined
            for message in [*model.check(), *check_model(model)]
            if message.level >= checks.WARNING
        ]
    assert not found, f"{block}: " + "\n".join(found)


# config


@pytest.fixture(scope="module")
def startproject_settings(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("startproject")
    call_command("startproject", "mysite", str(target), verbosity=0)
    return target / "mysite" / "settings.py"


def fresh_settings(settings_py: Path) -> dict:
    """The globals of a fresh ``startproject``'s settings.py."""
    namespace = {"__name__": "mysite.settings", "__file__": str(settings_py)}
    exec(compile(settings_py.read_text(), str(settings_py), "exec"), namespace)
    return namespace


def flowdock_checks(namespace: dict) -> list[checks.CheckMessage]:
    """django-flowdock's checks of settings, run with these FLOWDOCK and DATABASES."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Overriding setting DATABASES", UserWarning)
        with override_settings(
            FLOWDOCK=namespace.get("FLOWDOCK", {}), DATABASES=namespace["DATABASES"]
        ):
            return [*check_settings(), *check_setting_values(), *check_sqlite_delivery()]


def config_problems(namespace: dict) -> list[str]:
    problems = []
    flowdock = namespace.get("FLOWDOCK", {})
    problems += [f'FLOWDOCK["{key}"] is not a setting' for key in set(flowdock) - set(DEFAULTS)]
    problems += [
        f"{message.id}: {message.msg}"
        for message in flowdock_checks(namespace)
        if message.level >= checks.ERROR
    ]
    for app in namespace["INSTALLED_APPS"]:
        if isinstance(app, str):
            try:
                import_module(app)
            except ImportError:
                try:
                    import_string(app)  # an AppConfig's dotted path
                except ImportError as exc:
                    problems.append(f"INSTALLED_APPS: {app!r} does not import: {exc}")
    for middleware in namespace["MIDDLEWARE"]:
        if isinstance(middleware, str):
            try:
                import_string(middleware)
            except ImportError as exc:
                problems.append(f"MIDDLEWARE: {middleware!r} does not import: {exc}")
    for pattern in namespace.get("urlpatterns", []):
        if pattern is not Ellipsis and not isinstance(pattern, URLPattern | URLResolver):
            problems.append(f"urlpatterns holds {pattern!r}, not a URL pattern")
    return problems


@pytest.mark.parametrize("block", of_kind("config"))
def test_config_example_is_valid_configuration(block, startproject_settings):
    namespace = fresh_settings(startproject_settings)
    exec(block.compiled(), namespace)
    problems = config_problems(namespace)
    assert not problems, f"{block}: " + "\n".join(problems)


@pytest.mark.parametrize("page", SETUP_PAGES)
def test_setup_page_leaves_the_checks_nothing_to_say(page, startproject_settings):
    namespace = fresh_settings(startproject_settings)
    ids = {message.id for message in flowdock_checks(namespace)}
    assert "django_flowdock.W004" in ids, "a fresh startproject should need the SQLite setting"
    blocks = [block for block in BLOCKS if block.page == page and block.kind == "config"]
    for block in blocks:
        exec(block.compiled(), namespace)
    found = [f"{message.id}: {message.msg}" for message in flowdock_checks(namespace)]
    assert not found, f"{page} ({', '.join(map(str, blocks))}) on a fresh startproject: " + (
        "\n".join(found)
    )


# test and script: one pytest run

HELPDESK_MODELS = '''\
"""The reader's app in the docs' examples: the quick start's models, from the test app."""

from tests.testapp.models import Reply, Ticket

__all__ = ["Reply", "Ticket"]
'''

RESULTS_PLUGIN = '''\
"""Records each module's passed tests and failures for tests/test_docs_examples.py."""

import json
import os
from pathlib import Path

results = {}


def _entry(nodeid):
    module = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    return results.setdefault(module, {"passed": 0, "failures": []})


def pytest_collectreport(report):
    if report.failed:
        _entry(report.nodeid)["failures"].append(f"collecting: {report.longreprtext}")


def pytest_runtest_logreport(report):
    entry = _entry(report.nodeid)
    if report.failed:
        entry["failures"].append(f"{report.when}: {report.longreprtext}")
    elif report.passed and report.when == "call":
        entry["passed"] += 1


def pytest_sessionfinish(session):
    Path(os.environ["DOCS_EXAMPLES_RESULTS"]).write_text(json.dumps(results))
'''

SCRIPT_MODULE = '''\
"""{block}, run as written on the test database."""

import pytest

PAGE = {filename!r}
SOURCE = {source!r}


@pytest.mark.django_db(transaction=True)
def test_runs_as_written(flowdock_outbox):
    exec(compile(SOURCE, PAGE, "exec", dont_inherit=True), {{"__name__": "script"}})
'''


def write_examples(directory: Path, blocks: list[Block]) -> None:
    (directory / "helpdesk").mkdir()
    (directory / "helpdesk" / "__init__.py").write_text("")
    (directory / "helpdesk" / "models.py").write_text(HELPDESK_MODELS)
    (directory / "conftest.py").write_text(RESULTS_PLUGIN)
    for block in blocks:
        if block.kind == "test":
            text = block.padded
        else:
            text = SCRIPT_MODULE.format(
                block=block, source=block.padded, filename=str(ROOT / block.page)
            )
        (directory / f"{block.module_name}.py").write_text(text)


def test_test_and_script_examples_pass(tmp_path):
    blocks = [block for block in BLOCKS if block.kind in ("test", "script")]
    write_examples(tmp_path, blocks)
    results_file = tmp_path / "results.json"
    # The child picks its own test database: FLOWDOCK_TEST_DB_SUFFIX names this one's.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTEST_") and key != "FLOWDOCK_TEST_DB_SUFFIX"
    }
    env["DOCS_EXAMPLES_RESULTS"] = str(results_file)
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(tmp_path),
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(ROOT),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",  # its import alone takes seconds
        "--nomigrations",
        "--tb=short",
        "-q",
    ]
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    if not results_file.exists():
        pytest.fail(f"pytest did not finish (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")
    results = json.loads(results_file.read_text())
    problems = []
    for block in blocks:
        entry = results.get(block.module_name, {"passed": 0, "failures": []})
        if entry["failures"]:
            failures = "\n".join(entry["failures"])
            where = f"{block.module_name}.py: its line numbers are the page's"
            problems.append(f"{block} ({block.kind} example; {where}):\n{failures}")
        elif not entry["passed"]:
            problems.append(f"{block} ({block.kind} example): ran no test")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"


def test_blocks_are_found_with_their_kind_line_and_code_even_in_a_list():
    page = textwrap.dedent(
        """\
        1. Add the app:

            <!-- example: config -->

            ```python
            INSTALLED_APPS = [
                "django_flowdock",
            ]
            ```

        <!-- example: test -->
        ```console
        $ echo
        ```

        ```python
        x = 1
        ```
        """
    )

    blocks, stray = parse("docs/page.md", page)

    assert blocks == [
        Block("docs/page.md", 5, "config", 'INSTALLED_APPS = [\n    "django_flowdock",\n]\n'),
        Block("docs/page.md", 16, None, "x = 1\n"),
    ]
    assert stray == ["docs/page.md:11"]
    assert blocks[0].padded.splitlines()[5] == "INSTALLED_APPS = ["
