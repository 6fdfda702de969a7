"""`python -m labelfree3d` is the same as the `labelfree3d` command."""

import sys

from labelfree3d.cli.main import main

if __name__ == "__main__":  # not when a worker process re-imports the parent's main module
    sys.exit(main())
