"""Sphinx configuration for the django-exotel-sms documentation.

Build it warning-free with ``sphinx-build -W -b html docs docs/_build/html``; the code
examples in these pages are executed by ``tests/test_docs.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Read the version without importing the package (which would need Django settings).
_init = (ROOT / "django_exotel_sms" / "__init__.py").read_text(encoding="utf-8")
_match = re.search(r'^__version__ = "([^"]+)"', _init, re.MULTILINE)

project = "django-exotel-sms"
author = "django-exotel-sms developers"
copyright = "django-exotel-sms developers"
release = _match.group(1) if _match else "0.0.0"
version = ".".join(release.split(".")[:2])

extensions: list[str] = []
templates_path: list[str] = []
exclude_patterns = ["_build"]
root_doc = "index"
highlight_language = "python"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = f"django-exotel-sms {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Send SMS through Exotel from Django and know what became of every message.",
    "fixed_sidebar": True,
    "page_width": "1200px",  # room for 90-column code and diagrams
    "body_max_width": "none",
}
