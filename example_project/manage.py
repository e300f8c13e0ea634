#!/usr/bin/env python
"""The example project's manage.py; ``exotel_demo`` runs the demo."""

import os
import sys
from pathlib import Path

# Run from a checkout without installing: the package sits next to example_project/.
# (Appended, so an installed django-exotel-sms still comes first.)
sys.path.append(str(Path(__file__).resolve().parent.parent))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
