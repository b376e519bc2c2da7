"""The fitted layers of an estimator as scikit-learn shows them: ``coefs_`` and
``intercepts_`` (plain lists of views into the network's flat parameters), ``to_network()``.

As in scikit-learn, the lists are the model's: ``clf.coefs_[i][...] = a`` writes into the
network at once, and an item replaced (``clf.coefs_[i] = a``, as scikit-learn's own tests do)
is copied into the network before the network is next used (``_sync_layers``: prediction,
fit, ``to_network``, pickling, reading the list again).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..engine.network import Network

__all__ = ["FittedLayers"]

Array = np.ndarray


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
        return self._sync_layers()[0]

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
        return self._sync_layers()[1]

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

    def _sync_layers(self) -> tuple[list[Array], list[Array]]:
        """``coefs_`` and ``intercepts_``: the same two lists while the network is the same;
        an item the user replaced is copied into the network and becomes its view again."""
        net = self._fitted_net()
        kept = self.__dict__.get("_layer_lists")
        if kept is None or kept[0] is not net:  # made when first read (not by predict)
            views = (
                [net.W[q].T for q in range(1, net.Q + 1)],
                [net.b[q][:, 0] for q in range(1, net.Q + 1)],
            )
            kept = (net, [list(v) for v in views], views)
            self.__dict__["_layer_lists"] = kept
        _, lists, views = kept
        for name, items, layer_views in zip(("coefs_", "intercepts_"), lists, views, strict=True):
            if len(items) != len(layer_views):
                raise ValueError(f"{name} must have {len(layer_views)} layers, got {len(items)}")
            for i, view in enumerate(layer_views):
                if items[i] is not view:  # replaced by the user: into the network
                    new = np.asarray(items[i])
                    if new.shape != view.shape:
                        raise ValueError(
                            f"{name}[{i}] must have the shape {view.shape}, got {new.shape}"
                        )
                    view[...] = new
                    items[i] = view
        return lists[0], lists[1]

    def _apply_assigned_layers(self) -> None:
        """Before the network is used: items assigned into lists handed out are copied in
        (nothing to do, and nothing stored, when none were handed out for this network)."""
        kept = self.__dict__.get("_layer_lists")
        if kept is not None and kept[0] is self.__dict__.get("_net"):
            self._sync_layers()

    def _fitted_net(self) -> Network:
        net = self.__dict__.get("_net")
        if net is None:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet")
        return net

    def to_network(self) -> Network:
        """The trained ``betaprop.Network`` (a copy: later fits do not change it)."""
        check_is_fitted(self)
        self._apply_assigned_layers()
        return self._fitted_net().copy()
