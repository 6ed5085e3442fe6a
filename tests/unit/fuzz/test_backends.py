"""The fuzz suite again under the pure-Python protobuf backend, in a child process (this run uses upb).

The two backends fail differently on bad bytes: upb raises ``DecodeError``
for a string field that is not UTF-8, the pure-Python one
``UnicodeDecodeError``, which escaped four decoders before this suite. The
child runs every fuzz module with fewer examples
(``MODELSERVING_FUZZ_SCALE``) and proves which backend it used
(``test_backend``). Left out there: this module (no grandchildren) and the
TensorFlow graph fuzz, whose decoder is TensorFlow's C++ graph import, the
same under either backend, and whose own child process would double the
cost of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
#: The child's share of each test's examples: the pure-Python backend decodes several times slower.
CHILD_SCALE = "0.25"


def test_the_fuzz_suite_passes_under_the_pure_python_protobuf_backend():
    """Every fuzz test passes in a child whose protobuf backend is ``python`` (and that test says it is)."""
    env = {
        **os.environ,
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python",
        "MODELSERVING_FUZZ_BACKEND": "python",
        "MODELSERVING_FUZZ_SCALE": CHILD_SCALE,
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(HERE),
        "-v",
        "-p",
        "no:cacheprovider",
        f"--ignore={Path(__file__)}",
        "--deselect",
        f"{HERE.relative_to(REPO)}/test_models.py::test_mutated_tensorflow_graphs_are_rejected_in_a_process_that_survives",
    ]
    child = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    tail = "\n".join(child.stdout.splitlines()[-40:] + child.stderr.splitlines()[-10:])
    assert child.returncode == 0, f"the fuzz suite failed under the pure-Python protobuf backend:\n{tail}"
    assert "test_backend.py::test_the_protobuf_backend_is_the_one_this_run_names PASSED" in child.stdout, tail
    assert " failed" not in child.stdout.splitlines()[-1], tail
