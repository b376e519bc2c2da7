"""Test-session settings that must be in place before SciPy is first imported."""

import os
import signal

# scikit-learn's estimator checks test array-API input only when SciPy's array API
# support is switched on; without it they skip those checks.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

# The Ctrl-C tests need Ctrl-C as a terminal delivers it. A shell starts a background job
# (`pytest &`, nohup, some CI runners) with SIGINT ignored; an ignored signal stays ignored
# in this process and in every process it starts, as betaprop rightly keeps it, so those
# tests would see no Ctrl-C at all. Python's own handler is put back for the session: the
# processes the tests start then get the default action after exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
