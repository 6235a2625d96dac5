"""Atomic writes: the target appears only complete, keeps the permissions a plain open() would give
under the process umask, and the umask is never changed (a heartbeat thread may be creating files)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from mgmt_audit.atomic import atomic_path, atomic_write_text


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_get_the_umask_permissions_of_a_plain_open(tmp_path, umask_027):
    atomic_write_text(tmp_path / "a" / "manifest.json", "{}")
    with open(tmp_path / "plain.json", "w") as handle:
        handle.write("{}")
    assert mode(tmp_path / "a" / "manifest.json") == mode(tmp_path / "plain.json") == 0o640
    with atomic_path(tmp_path / "a" / "x.npy") as tmp:
        np.save(tmp, np.arange(3))
    assert mode(tmp_path / "a" / "x.npy") == 0o640
    assert np.array_equal(np.load(tmp_path / "a" / "x.npy"), np.arange(3))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["manifest.json", "x.npy"]


def test_the_umask_is_never_set(tmp_path, monkeypatch):
    def forbidden(mask):
        raise AssertionError(f"os.umask({mask:o}) called: another thread would create files with it")

    monkeypatch.setattr(os, "umask", forbidden)
    atomic_write_text(tmp_path / "meta.json", "{}")
    assert (tmp_path / "meta.json").read_text() == "{}"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "curves.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["curves.json"]
