"""Finding the checkpoint to restore from, while the job that writes them goes on."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from flink_jobs.control import latest_checkpoint


def _checkpoint(root: Path, job: str, number: int, mtime: float) -> Path:
    path = root / job / f"chk-{number}"
    path.mkdir(parents=True)
    (path / "_metadata").write_bytes(b"m")
    os.utime(path / "_metadata", (mtime, mtime))
    return path


def test_the_newest_completed_checkpoint_of_any_job_wins(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, "old-job", 9, 1_000)
    newest = _checkpoint(tmp_path, "new-job", 2, 2_000)
    (tmp_path / "new-job" / "chk-3").mkdir()  # in progress: no _metadata yet
    assert latest_checkpoint(f"file://{tmp_path}") == str(newest)


def test_a_checkpoint_subsumed_while_listing_is_skipped_not_raised(tmp_path, monkeypatch):
    kept = _checkpoint(tmp_path, "job", 8, 1_000)
    _checkpoint(tmp_path, "job", 9, 2_000)
    real_glob, real_stat = Path.glob, Path.stat
    deleted: list[str] = []

    def glob(self, pattern):
        listed = list(real_glob(self, pattern))
        deleted.append("chk-9")  # the job deletes it right after the listing
        return iter(listed)

    def stat(self, *args, **kwargs):
        if any(name in self.parts for name in deleted):
            raise FileNotFoundError(errno.ENOENT, "gone", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "glob", glob)
    monkeypatch.setattr(Path, "stat", stat)
    assert latest_checkpoint(tmp_path) == str(kept)
