"""``python -m django_exotel_sms.sandbox --port 8765``: run the sandbox (no Django needed)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
