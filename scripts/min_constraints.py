"""Print pip constraints that hold every runtime dependency, and those of the extras users
install (all but ``test``), at its declared floor.

    python scripts/min_constraints.py > min.txt && pip install -c min.txt -e ".[test]"
    python scripts/min_constraints.py --build-system    the build requirements' floors

The floors come from pyproject.toml alone, so what is declared is what is tested.
"""

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*(?P<version>[^,;\s]+)")


def main() -> int:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())
    if sys.argv[1:] == ["--build-system"]:
        dependencies = declared["build-system"]["requires"]
    else:
        extras = declared["project"]["optional-dependencies"]
        dependencies = declared["project"]["dependencies"] + [
            dependency
            for extra, listed in extras.items()
            if extra != "test"
            for dependency in listed
        ]
    pins = {}
    for dependency in dependencies:
        match = FLOOR.fullmatch(dependency.split(";")[0].strip())
        if match is None:
            print(
                f"cannot read a floor from {dependency!r}: declare it as NAME>=VERSION",
                file=sys.stderr,
            )
            return 1
        pins[match["name"].lower()] = f"{match['name']}=={match['version']}"
    print("\n".join(pins.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
