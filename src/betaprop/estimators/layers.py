"""The fitted layers of an estimator as scikit-learn shows them: ``coefs_`` and
``intercepts_`` (views into the network's flat parameters, writable), ``to_network()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..engine.network import Network

__all__ = ["LayerList", "FittedLayers"]

Array = np.ndarray


class LayerList(list):
    """``coefs_`` / ``intercepts_`` of a fitted model: views into ``net.params``.

    ``clf.coefs_[i] = new_array`` writes the new values into the network (as assigning into
    scikit-learn's list changes its model); the shape must stay the layer's.
    """

    def __init__(self, views: list[Array], name: str) -> None:
        super().__init__(views)
        self.name = name

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            views = list.__getitem__(self, index)
            values = list(value)
            if len(values) != len(views):
                raise ValueError(f"{self.name} has {len(views)} layers there, got {len(values)}")
        else:
            views, values = [list.__getitem__(self, index)], [value]
        for view, new in zip(views, values, strict=True):
            new = np.asarray(new)
            if new.shape != view.shape:
                raise ValueError(
                    f"{self.name} entry must have the shape {view.shape}, got {new.shape}"
                )
            view[...] = new


class FittedLayers:
    """``coefs_``, ``intercepts_`` and ``to_network`` for an estimator holding ``_net``."""

    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices, ``coefs_[i]`` of shape (n_in, n_out): views ``W[i + 1].T``.

        Before the first fit, a list assigned here (scikit-learn's own test_fit does so) is
        kept as it is and becomes the starting weights of ``partial_fit`` / a warm start.
        """
        if "_net" not in self.__dict__ and "_given_coefs" in self.__dict__:
            return self.__dict__["_given_coefs"]
        net = self._fitted_net()
        return LayerList([net.W[q].T for q in range(1, net.Q + 1)], "coefs_")

    @coefs_.setter
    def coefs_(self, coefs: Sequence[Array]) -> None:
        if "_net" not in self.__dict__:
            self.__dict__["_given_coefs"] = coefs
            return
        net = self._fitted_net()
        shapes = [net.W[q].T.shape for q in range(1, net.Q + 1)]
        given = [np.shape(c) for c in coefs]
        if given != shapes:
            raise ValueError(f"coefs_ must have the shapes {shapes}, got {given}")
        for q, c in enumerate(coefs, start=1):
            net.W[q][...] = np.asarray(c).T

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors, ``intercepts_[i]`` of shape (n_out,): views of ``b[i + 1]``."""
        if "_net" not in self.__dict__ and "_given_intercepts" in self.__dict__:
            return self.__dict__["_given_intercepts"]
        net = self._fitted_net()
        return LayerList([net.b[q][:, 0] for q in range(1, net.Q + 1)], "intercepts_")

    @intercepts_.setter
    def intercepts_(self, intercepts: Sequence[Array]) -> None:
        if "_net" not in self.__dict__:
            self.__dict__["_given_intercepts"] = intercepts
            return
        net = self._fitted_net()
        shapes = [(net.sizes[q],) for q in range(1, net.Q + 1)]
        given = [np.shape(b) for b in intercepts]
        if given != shapes:
            raise ValueError(f"intercepts_ must have the shapes {shapes}, got {given}")
        for q, b in enumerate(intercepts, start=1):
            net.b[q][:, 0] = b

    def _fitted_net(self) -> Network:
        net = self.__dict__.get("_net")
        if net is None:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet")
        return net

    def to_network(self) -> Network:
        """The trained ``betaprop.Network`` (a copy: later fits do not change it)."""
        check_is_fitted(self)
        return self._fitted_net().copy()
