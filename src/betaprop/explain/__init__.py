"""Seeing the algorithm at work: one-example traces, diagnostics of beta per layer, plots."""
