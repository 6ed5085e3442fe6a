"""Looking at process trees from a test."""

from __future__ import annotations

from pathlib import Path

from serving.ops.processes import pid_alive


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state": the ppid


def descendants(pid: int) -> set[int]:
    """Every live process whose chain of parents leads to ``pid``."""
    parents = {int(p.name): _parent(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier and child not in found}
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    """The ones of ``pids`` still running."""
    return {p for p in pids if pid_alive(p)}
