"""``python -m smsfold``: the same as the ``smsfold`` command."""

import sys

from smsfold.cli import main

sys.exit(main())
