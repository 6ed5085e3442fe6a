"""``ensemble``: speculative execution; several member models score each record, a decider picks the answer.

:mod:`.document` is the artifact (a JSON document) and its checks;
:mod:`.members` runs the members within the latency budget;
:mod:`.model` is the format (:class:`~.model.EnsembleModel`); :mod:`.publishing`
builds the document from a user's file for ``modelserving publish ensemble``.
See docs/ensembles.md.
"""
