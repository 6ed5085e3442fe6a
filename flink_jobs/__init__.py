"""Flink topology for model serving: environment, I/O, and the two serving jobs.

The domain lives in ``serving``; this package only wires it into PyFlink.
"""
