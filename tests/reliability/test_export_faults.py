"""An export that runs out of disk: a one-line error, the previous export as it was."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from store.errors import TunesmithError
from tests.conftest import TinyRun
from tests.reliability.harness import fill_disk, integrity_ok, small_disk
from tests.reliability.scorecard import Scorecard
from trainer import export
from tui.cli.main import cli


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its content."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_disk_full_while_exporting_keeps_the_previous_export(
    completed_tiny_run: TinyRun,
    tmp_path: Path,
    scorecard: Scorecard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = str(completed_tiny_run.run_id)
    db_path = completed_tiny_run.db_path
    disk = tmp_path / "disk"
    with small_disk(disk, 16 * 1024**2) as mounted:
        target = disk / "export"
        exported = CliRunner().invoke(cli, ["--db", str(db_path), "export", run_id, str(target)])
        assert exported.exit_code == 0, exported.output
        before = folder_bytes(target)
        expected = (
            f"the disk is full: run {run_id} could not be exported to {target}, which is as it"
            " was; free some space and export again"
        )
        how = "a full tmpfs" if mounted else "an injected ENOSPC"

        with scorecard.fault(f"disk full while exporting over an earlier export ({how})"):
            if mounted:
                fill_disk(disk, leave_bytes=256 * 1024)
                result = CliRunner().invoke(
                    cli, ["--db", str(db_path), "export", run_id, str(target), "--force"]
                )
                assert result.exit_code == 1
                assert result.stderr.splitlines()[-1] == f"Error: {expected}"
            else:

                def copy_until_full(source: Path, destination: Path, **_: object) -> None:
                    destination.write_bytes(source.read_bytes()[:1024])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(destination))

                monkeypatch.setattr(shutil, "copyfile", copy_until_full)
                with pytest.raises(TunesmithError) as raised:
                    export.export_run(
                        db_path, int(run_id), target, force=True, on_status=lambda line: None
                    )
                assert raised.value.message == expected
            assert folder_bytes(target) == before
            assert [path.name for path in disk.iterdir() if path.name != "filler"] == ["export"]
            assert integrity_ok(db_path)
