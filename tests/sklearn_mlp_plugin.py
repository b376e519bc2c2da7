"""pytest plugin: scikit-learn's own ``sklearn/neural_network/tests/test_mlp.py`` run against
betaprop's classes (tests/test_estimators_dropin.py loads it with ``-p``).

The test module does ``from sklearn.neural_network import MLPClassifier, MLPRegressor``
when pytest imports it; this plugin is imported first and points those two names of the
``sklearn.neural_network`` package at betaprop's estimators, so the file runs unchanged.
"""

import sklearn.neural_network

import betaprop

sklearn.neural_network.MLPClassifier = betaprop.MLPClassifier
sklearn.neural_network.MLPRegressor = betaprop.MLPRegressor
