"""Check the built wheel and sdist carry what they must.

    python scripts/check_dist.py dist

The wheel: every file of the package that git tracks (templates, catalogues, py.typed),
so a data file added without a package-data pattern fails here, not on a user's site.
Its metadata: classifiers PyPI knows (twine check does not look). The sdist: what running
its tests needs. The README, PyPI's project page: absolute links
only, since relative ones break there.
"""

import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from trove_classifiers import classifiers as known_classifiers

ROOT = Path(__file__).resolve().parent.parent
SDIST_NEEDS = [
    "LICENSE",
    "pyproject.toml",
    "tests/conftest.py",
    "tests/settings.py",
    "tests/urls.py",
    "tests/testapp/models.py",
    "tests/contractapp/models.py",
    "tests/sandbox/conftest.py",
    "example_project/manage.py",
]


DOCS_SITE = "https://django-flowdock.readthedocs.io/en/latest/"
REPO_FILES = re.compile(
    r"https://(?:github\.com/django-flowdock/django-flowdock/(?:blob|tree)"
    r"|raw\.githubusercontent\.com/django-flowdock/django-flowdock)/main/(?P<path>[^#?]*)"
)


def readme_problems(readme: str) -> list[str]:
    """Relative links, and absolute ones to a docs page or repository file that is not here."""
    problems = []
    for target in re.findall(r"\]\(([^)\s]*)\)|<(https://[^>]*)>", readme):
        target = "".join(target)
        if not target.startswith(("https://", "http://", "#")):
            problems.append(f"README.md links to {target!r}: PyPI needs an absolute URL")
        elif target.startswith(DOCS_SITE):
            page = target.removeprefix(DOCS_SITE).split("#")[0].strip("/") or "index"
            if not (ROOT / "docs" / f"{page}.md").exists():
                problems.append(f"README.md links to {target!r}: no docs/{page}.md")
        elif (match := REPO_FILES.match(target)) and not (ROOT / match["path"]).exists():
            problems.append(f"README.md links to {target!r}: no {match['path']}")
    return problems


def main(dist: Path) -> int:
    problems = []
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")

    tracked = subprocess.run(
        ["git", "ls-files", "django_flowdock"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    problems += [f"{wheel.name} lacks {path}" for path in tracked if path not in in_wheel]
    metadata_name = next(name for name in in_wheel if name.endswith(".dist-info/METADATA"))
    metadata = HeaderParser().parsestr(zipfile.ZipFile(wheel).read(metadata_name).decode())
    problems += [
        f"unknown classifier {classifier!r}"
        for classifier in metadata.get_all("Classifier", [])
        if classifier not in known_classifiers
    ]
    if not any(name.endswith("LICENSE") for name in in_wheel):
        problems.append(f"{wheel.name} lacks LICENSE")

    with tarfile.open(sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0]
        in_sdist = set(archive.getnames())
    problems += [
        f"{sdist.name} lacks {path}" for path in SDIST_NEEDS if f"{prefix}/{path}" not in in_sdist
    ]
    problems += [
        f"{sdist.name} carries {name}"
        for name in sorted(in_sdist)
        if name.endswith((".pyc", ".sqlite3", "/.env"))
    ]

    problems += readme_problems((ROOT / "README.md").read_text(encoding="utf-8"))

    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(
            f"{wheel.name}: all {len(tracked)} tracked package files; "
            f"{sdist.name}: its tests' support files"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
