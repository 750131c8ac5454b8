"""Starting the sandbox as a child process of something that has other settings."""

import os
from pathlib import Path

import django_flowdock


def sandbox_environment() -> dict[str, str]:
    """The child's environment: no inherited settings module, this package importable."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    package_root = str(Path(django_flowdock.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env
