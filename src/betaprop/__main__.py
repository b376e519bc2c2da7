"""``python -m betaprop``: the ``betaprop`` command.

Under MPI (``mpiexec -n K python -m mpi4py -m betaprop train ...``) the ranks train data
parallel, and a failure on one rank stops all of them (``training.distributed.run_main``).
"""

import sys

from .cli import main
from .training.distributed import run_main

sys.exit(run_main(main))
