"""The seed's algorithm: network, activations, losses, initialisation, reference, gradient check.

Knows nothing of files, terminals or scikit-learn.
"""
