"""``python -m ich predict ...``: the same as the ``ich`` console command."""

import sys

from ich.cli import main

sys.exit(main())
