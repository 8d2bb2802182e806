"""``python -m nbtrack``: the ``nbtrack`` command."""

import sys

from nbtrack.cli import main

if __name__ == "__main__":
    sys.exit(main())
