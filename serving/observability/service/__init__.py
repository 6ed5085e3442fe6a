"""The stats service (``modelserving stats serve``): reads the stats and model-events topics, answers over HTTP.

Flink deprecated queryable state (and PyFlink never had it), so the jobs send
their stats out on the stats side output instead, and this service answers the
questions the tutorial answered with queryable state:

* ``GET /models``: every model known, with its status (see :mod:`serving.observability.monitor`);
* ``GET /state/{data_type}``: the serving model and its merged stats;
* ``GET /history/{data_type}``: every version in deployment order (``?at=MS``: the one serving then);
* ``GET /series/{data_type}``: throughput and latency over time;
* ``GET /experiments`` (and ``/experiments/{data_type}``): each champion-versus-challenger pair, and the lineups;
* ``GET /audit/{record_id}``: which model version scored a record (reads the results topic on request);
* ``GET /overview``: all of it at once, for the dashboard;
* ``GET /metrics``: Prometheus text exposition;
* ``GET /health``: always 200, with the Kafka status;
* ``GET /`` (and ``/dashboard``): the live dashboard;
* ``GET /openapi.json``: the OpenAPI schema.

The parts: :mod:`.feed` (the thread that reads Kafka), :mod:`.state` (the
service the endpoints read, and its answers), :mod:`.prometheus` (the
``/metrics`` collector) and :mod:`.app` (the HTTP app, a server thread, and
:func:`~serving.observability.service.app.serve`).

The feed reads both topics from the beginning with ``read_committed`` (no
consumer group offsets: the answers are rebuilt from the topics on every
start; the stats topic is compacted, so that is quick). Topics that do not
exist yet are picked up once they do. When no broker answers, the query
endpoints answer 503 with the reason, and the feed carries on where it was
once the broker is back.
"""
