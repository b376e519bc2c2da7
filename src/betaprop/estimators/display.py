"""How an estimator shows itself: scikit-learn's HTML display (notebooks) links to betaprop's
documentation and, as for scikit-learn's MLP, shows no output features; everyone else finds
``get_feature_names_out`` (pipelines, set_output). ``BaseMLP`` inherits ``Displayed``.
"""

from __future__ import annotations

import sys
from typing import Any

from sklearn.base import ClassNamePrefixFeaturesOutMixin
from sklearn.utils.metaestimators import available_if

__all__ = ["Displayed"]


def _not_asked_by_the_html_display(estimator: Any) -> bool:
    """False when scikit-learn's HTML display (notebooks) asks for get_feature_names_out.

    The display shows a transformer's output features in a box after it; scikit-learn's MLP
    is no transformer and shows none, so ours (a transformer only through the extra
    ``transform``) shows none either. Anyone else (pipelines, set_output) finds the method.
    """
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("sklearn.utils._repr_html"):
            return False
        if module not in ("sklearn.utils._available_if", __name__):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return True


class Displayed(ClassNamePrefixFeaturesOutMixin):
    """The documentation links and the output feature names of an estimator."""

    # scikit-learn's HTML display: the "?" link and the parameters' links lead to betaprop's
    # documentation (``betaprop.estimators.DOCS_URL``); scikit-learn's _get_doc_link links
    # only classes of the package named here.
    _doc_link_module = "betaprop"

    @property
    def _doc_link_template(self) -> str:
        from . import DOCS_URL

        return DOCS_URL

    @available_if(_not_asked_by_the_html_display)
    def get_feature_names_out(self, input_features: Any = None) -> Any:
        """Names of ``transform``'s output columns: "<class name lower case><i>"."""
        return super().get_feature_names_out(input_features)
