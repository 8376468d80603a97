#!/usr/bin/env python
"""Django's command-line utility; configuration problems print one sentence instead of a traceback."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from django.core.management import execute_from_command_line

    from controlplane.startup import StartupError

    try:
        execute_from_command_line(sys.argv)
    except StartupError as exc:
        print(f"keel: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
