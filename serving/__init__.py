"""Model serving domain: codecs, models and factories, registry, stats, settings.

This package never imports Flink; ``flink_jobs`` wires it into a topology.
"""

__version__ = "0.1.0"
