"""Kafka providers, like the reference tutorial's client: data, models and results.

Flink-free functions that feed a running serving job and watch what it says:

* :func:`.data.publish_data` streams wine CSV rows as ``WineRecord`` protobufs
  to the data topic at a chosen rate;
* :func:`.models.publish_model` publishes one model file as a ``ModelDescriptor``
  (inline, or by reference when it is too large to travel inline);
* :func:`.models.cycle_models` publishes the models of a directory one after another;
* :func:`.results.tail_results` yields the ``ServingResult`` messages the job commits.

:mod:`.common` holds their errors and the producer and topic helpers they share.
Every failure a user can cause is a :class:`~serving.errors.ServingError`
subclass with a one-line message; nothing here prints.
"""
