"""Bad input cases: ``datasets`` folders with broken tables, bad split lists and links out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from tests.reliability.corpus import Case, good


def write_arrow(path: Path, columns: dict[str, list[object]]) -> None:
    """An Arrow stream file as ``datasets.save_to_disk`` writes them."""
    table = pa.table(columns)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def dataset_folder(
    state: object = None,
    arrow: dict[str, list[object]] | None = None,
    raw_arrow: bytes | None = None,
) -> Callable[[Path], None]:
    """A builder of a ``save_to_disk`` folder with the given state.json and data file."""

    def build(folder: Path) -> None:
        folder.mkdir()
        chosen = state if state is not None else {"_data_files": [{"filename": "data.arrow"}]}
        (folder / "state.json").write_text(json.dumps(chosen), encoding="utf-8")
        if arrow is not None:
            write_arrow(folder / "data.arrow", arrow)
        if raw_arrow is not None:
            (folder / "data.arrow").write_bytes(raw_arrow)

    return build


def folder_files(files: dict[str, str]) -> Callable[[Path], None]:
    """A builder of a folder holding ``files`` (name -> text)."""

    def build(folder: Path) -> None:
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")

    return build


def folder_with_link(target_kind: str) -> Callable[[Path], None]:
    """A dataset folder one of whose files is a link to a file outside it."""

    def build(folder: Path) -> None:
        outside = folder.parent / f"outside-{target_kind}"
        outside.mkdir()
        write_arrow(outside / "data.arrow", {"prompt": ["outside"], "response": ["secret"]})
        (outside / "state.json").write_text(
            json.dumps({"_data_files": [{"filename": "data.arrow"}]}), encoding="utf-8"
        )
        folder.mkdir()
        if target_kind == "state":
            (folder / "state.json").symlink_to(outside / "state.json")
        elif target_kind == "arrow":
            (folder / "state.json").write_text(
                json.dumps({"_data_files": [{"filename": "data.arrow"}]}), encoding="utf-8"
            )
            (folder / "data.arrow").symlink_to(outside / "data.arrow")
        else:
            (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
            (folder / "train").symlink_to(outside)

    return build


def dataset_folders() -> list[Case]:
    """``save_to_disk`` folders with broken state files, data files, traversal and links."""
    rows: dict[str, list[object]] = {
        "prompt": ["arrow kept", "", None],
        "response": ["fine", "a", "b"],
    }
    folders = [
        Case("folder-empty", "empty-folder", b"", 0, "file", dataset_folder(state={})),
        Case(
            "folder-state-not-json",
            "state-not-json",
            b"",
            0,
            "file",
            folder_files({"state.json": "{oops"}),
        ),
        Case("folder-state-list", "state-list", b"", 0, "file", dataset_folder(state=[1, 2])),
        Case(
            "folder-data-files-string",
            "df-string",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": "data.arrow"}),
        ),
        Case(
            "folder-data-files-ints",
            "df-ints",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [1, 2]}),
        ),
        Case(
            "folder-filename-int",
            "fn-int",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [{"filename": 7}]}),
        ),
        Case("folder-missing-arrow", "missing-arrow", b"", 0, "file", dataset_folder()),
        Case(
            "folder-traversal",
            "traversal",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [{"filename": "../outside.arrow"}]}),
        ),
        Case(
            "folder-absolute",
            "absolute",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [{"filename": "/etc/passwd"}]}),
        ),
        Case(
            "folder-corrupt-arrow",
            "corrupt",
            b"",
            0,
            "file",
            dataset_folder(raw_arrow=b"ARROW1\x00\x00garbage"),
        ),
        Case(
            "folder-json-as-arrow",
            "json-arrow",
            b"",
            0,
            "file",
            dataset_folder(raw_arrow=good("x", 0)),
        ),
        Case("folder-bad-rows", "bad-rows", b"", 1, (2, 3), dataset_folder(arrow=rows)),
        Case(
            "folder-wrong-columns",
            "wrong-columns",
            b"",
            0,
            (1,),
            dataset_folder(arrow={"question": ["q"], "answer": ["a"]}),
        ),
        Case(
            "folder-int-columns",
            "int-columns",
            b"",
            0,
            (1, 2),
            dataset_folder(arrow={"prompt": [1, 2], "response": [3, 4]}),
        ),
        Case(
            "folder-link-state",
            "link-state",
            b"",
            0,
            "file",
            folder_with_link("state"),
        ),
        Case(
            "folder-link-arrow",
            "link-arrow",
            b"",
            0,
            "file",
            folder_with_link("arrow"),
        ),
        Case(
            "folder-link-split",
            "link-split",
            b"",
            0,
            "file",
            folder_with_link("split"),
        ),
        Case(
            "folder-splits-string",
            "splits-string",
            b"",
            0,
            "file",
            folder_files({"dataset_dict.json": '{"splits": "train"}'}),
        ),
        Case(
            "folder-splits-objects",
            "splits-objects",
            b"",
            0,
            "file",
            folder_files({"dataset_dict.json": '{"splits": [{"a": 1}]}'}),
        ),
        Case(
            "folder-splits-traversal",
            "splits-traversal",
            b"",
            0,
            "file",
            folder_files({"dataset_dict.json": '{"splits": ["..", "../x"]}'}),
        ),
    ]
    return folders
