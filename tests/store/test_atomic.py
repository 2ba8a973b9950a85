"""Whole files and folders: a failure leaves the old version and no leftovers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from store.atomic import atomic_text_file, publish_folder, write_atomically


def test_a_failure_inside_the_block_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "examples.jsonl"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_text_file(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("disk went away")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["examples.jsonl"]


def test_the_new_text_replaces_the_file_whole_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "launch.json"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    write_atomically(target, "{}\n")
    assert target.read_text(encoding="utf-8") == "{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomically(target, "[]", mode=0o640)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(path.name for path in tmp_path.iterdir()) == ["launch.json"]


def test_publish_folder_puts_a_new_folder_in_place(tmp_path: Path) -> None:
    staging = tmp_path / ".export.staging"
    staging.mkdir()
    (staging / "README.md").write_text("card", encoding="utf-8")
    publish_folder(staging, tmp_path / "export")
    assert (tmp_path / "export" / "README.md").read_text(encoding="utf-8") == "card"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export"]


def test_publish_folder_replaces_a_folder_holding_a_link_without_following_it(
    tmp_path: Path,
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine", encoding="utf-8")
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.safetensors").write_bytes(b"old")
    (target / "link").symlink_to(precious, target_is_directory=True)
    staging = tmp_path / ".export.staging"
    staging.mkdir()
    (staging / "new.safetensors").write_bytes(b"new")
    publish_folder(staging, target)
    assert sorted(path.name for path in target.iterdir()) == ["new.safetensors"]
    assert (precious / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export", "precious"]
