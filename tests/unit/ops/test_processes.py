"""Local processes: SIGTERM takes the Ctrl-C path."""

from __future__ import annotations


def test_sigterm_runs_the_same_clean_up_as_ctrl_c(tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "cleaned"
    code = (
        "import os, signal, time\n"
        "from serving.ops.processes import interrupt_on_sigterm\n"
        "interrupt_on_sigterm()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(10)\n"
        "except KeyboardInterrupt:\n"
        f"    open({str(marker)!r}, 'w').write('yes')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "yes"
