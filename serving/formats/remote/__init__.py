"""Remote models: the stream calls a model server instead of embedding the model.

:mod:`.oip` is the ``oip`` format (the Open Inference Protocol, KServe v2, over
REST); :mod:`.protocol` encodes its requests and decodes its replies and
checks server locations; :mod:`.client` is the HTTP client with its timeouts
and its one retry.
"""
