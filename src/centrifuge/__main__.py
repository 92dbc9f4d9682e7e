"""``python -m centrifuge`` -> :func:`centrifuge.cli.main`."""

import sys

from centrifuge.cli import main

sys.exit(main())
