"""C7: scan Flink's TaskManager and JobManager logs for the Kafka connector's signs of data loss.

The connector's committer logs "... most likely signals data loss ..." when a
transaction it must commit was fenced or timed out, and a failed commit shows
as ``ProducerFencedException`` or a non-zero ``numCommittablesFailure``. Some
such lines are harmless (the writer fencing its own lingering transactions
while it recovers); an allow-list of regexes drops those.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from serving.errors import ServingError

#: What flags a line, by name; matched case-insensitively.
DEFAULT_PATTERNS: dict[str, str] = {
    "data loss": r"most likely signals data loss",
    "fenced": r"ProducerFencedException|\bfenced\b",
    "commit failed": r"Unable to commit transaction",
    # A count after the name, in any of the forms a metric reporter or a log line uses: =3, : 3, "…":3.
    "committables failed": r"numCommittablesFailure[\"'\s=:]*[1-9]",
}

#: Flagged lines known to be harmless: the writer aborting (and so fencing) its previous
#: attempt's lingering transactions during recovery, which is how exactly-once recovers.
DEFAULT_ALLOW: tuple[str, ...] = (r"Producer \S+ fenced while aborting",)

#: Longest line text a finding keeps.
MAX_TEXT = 300


class LogScanError(ServingError):
    """A log file could not be read."""

    reason = "log scan failed"


@dataclass(frozen=True)
class LogFinding:
    """One flagged line: where it is, which pattern flagged it, its (truncated) text."""

    path: str
    line: int
    pattern: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scan_lines(
    lines: Iterable[str],
    path: str,
    *,
    patterns: dict[str, str] | None = None,
    allow: Sequence[str] = DEFAULT_ALLOW,
    max_text: int = MAX_TEXT,
) -> Iterator[LogFinding]:
    """The findings of ``lines`` (numbered from 1), named ``path``: lines a pattern matches and no allow regex does.

    Each line yields at most one finding, under the first pattern that matched.
    """
    flagged = [(name, re.compile(rx, re.IGNORECASE)) for name, rx in (patterns or DEFAULT_PATTERNS).items()]
    allowed = [re.compile(rx) for rx in allow]
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        name = next((name for name, rx in flagged if rx.search(line)), None)
        if name is None or any(rx.search(line) for rx in allowed):
            continue
        yield LogFinding(path, number, name, _truncate(line.strip(), max_text))


def scan_logs(
    paths: Iterable[str | Path],
    *,
    patterns: dict[str, str] | None = None,
    allow: Sequence[str] = DEFAULT_ALLOW,
    extra_allow: Sequence[str] = (),
    max_text: int = MAX_TEXT,
    missing_ok: bool = False,
) -> list[LogFinding]:
    """Every flagged line of the log files ``paths``, in file then line order.

    Args:
        paths: TaskManager / JobManager log files (``*.log``, ``*.out``).
        patterns: Name -> regex of what flags a line; :data:`DEFAULT_PATTERNS` when None.
        allow: Regexes of harmless lines (case-sensitive, searched anywhere in the line).
        extra_allow: More harmless-line regexes, on top of ``allow``.
        max_text: Longest text kept per finding.
        missing_ok: Skip a file that does not exist instead of failing.

    Raises:
        LogScanError: A file cannot be read (or does not exist, unless ``missing_ok``).
    """
    findings: list[LogFinding] = []
    for path in paths:
        file = Path(path)
        if missing_ok and not file.exists():
            continue
        try:
            with file.open(encoding="utf-8", errors="replace") as lines:
                findings.extend(
                    scan_lines(lines, str(file), patterns=patterns, allow=(*allow, *extra_allow), max_text=max_text)
                )
        except OSError as exc:
            raise LogScanError(f"cannot read log {file}: {exc}") from exc
    return findings
