"""Which protobuf backend this run decodes with, and that the generated code of ``serving/pb`` works under it.

``test_backends`` runs the fuzz suite again under the pure-Python backend
and names it in ``MODELSERVING_FUZZ_BACKEND``; this test proves the child
really decoded with it. Alone, the expected backend is the one
``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION`` asks for, else upb (the default).
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from google.protobuf.internal import api_implementation

import serving.pb


def test_the_protobuf_backend_is_the_one_this_run_names():
    """The backend in use is the one the environment asks for."""
    expected = (
        os.environ.get("MODELSERVING_FUZZ_BACKEND") or os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") or "upb"
    )
    assert api_implementation.Type() == expected


def test_every_generated_module_imports_and_round_trips_its_messages_under_this_backend():
    """Each ``serving/pb`` module imports, and each of its messages serializes and parses back (defaults set)."""
    modules = [importlib.import_module(f"serving.pb.{m.name}") for m in pkgutil.iter_modules(serving.pb.__path__)]
    assert len(modules) >= 10
    for module in modules:
        messages = [getattr(module, name) for name in module.DESCRIPTOR.message_types_by_name]
        assert messages, module.__name__
        for cls in messages:
            assert cls.FromString(cls().SerializeToString()) == cls()
