"""``python -m betaprop.cli``: the ``betaprop`` command, as the console script runs it."""

import sys

from _betaprop_command import main

sys.exit(main())
