"""``python -m boomda`` is the ``boomda`` command."""

import sys

from boomda.cli import main

sys.exit(main())
