"""``python -m betaprop.cli``: the ``betaprop`` command."""

import sys

from . import main

sys.exit(main())
