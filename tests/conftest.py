"""Test-session settings that must be in place before SciPy is first imported."""

import os
import signal

# scikit-learn's estimator checks test array-API input only when SciPy's array API
# support is switched on; without it they skip those checks.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

# The signal tests need the signals as a terminal delivers them. A shell starts a background
# job (`pytest &`) with SIGINT ignored, nohup ignores SIGHUP, and some CI runners ignore
# more; an ignored signal stays ignored in this process and in every process it starts, as
# betaprop rightly keeps it, so those tests would see no signal at all. The default actions
# are put back for the session (Python's own handler for SIGINT): the processes the tests
# start then get the default action after exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
for _name in ("SIGTERM", "SIGHUP"):
    if hasattr(signal, _name) and signal.getsignal(getattr(signal, _name)) is signal.SIG_IGN:
        signal.signal(getattr(signal, _name), signal.SIG_DFL)
