"""Kafka: typed settings, the local development broker, topics, producers and consumers.

Nothing here imports Flink; ``flink_jobs.io`` turns these settings into
connector configuration.
"""
