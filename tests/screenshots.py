"""Where browser tests save their screenshots.

With ``UPDATE_SCREENSHOTS=1`` they refresh the pictures in docs/images; otherwise they
go to a temporary folder, so an ordinary test run leaves the work tree clean.
"""

import os
import tempfile
from pathlib import Path

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def screenshot_path(filename: str) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        folder = DOCS_IMAGES
    else:
        folder = Path(tempfile.gettempdir()) / "django-flowdock-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename
