"""Test-session settings that must be in place before SciPy is first imported."""

import os

# scikit-learn's estimator checks test array-API input only when SciPy's array API
# support is switched on; without it they skip those checks.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
