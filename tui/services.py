"""What the app shares with the workers of its screens: the database and the model server.

Workers run in threads; the one SQLite connection is handed to one thread at a time, and one
model server (per project) is started on first need and stopped when the app quits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from store.errors import ModelError
from store.projects import Project
from store.runs import list_runs
from trainer.control.launch import ServerHandle, start_server

if TYPE_CHECKING:
    import sqlite_utils
    from textual.dom import DOMNode


StatusCallback = Callable[[str], None]
"""Called with each status line a starting server prints (for example a model conversion)."""

ServerStarter = Callable[[Path, Project, StatusCallback], ServerHandle]
"""Starts a model server for a project of a database; tests swap in a stand-in."""


def start_project_server(
    db_path: Path, project: Project, on_status: StatusCallback
) -> ServerHandle:
    """The project's model server on loopback with a fresh random key, every completed run on."""
    return start_server(db_path=db_path, project=project.name, on_status=on_status)


@dataclass(frozen=True)
class RunningServer:
    """A model server and what it was started for."""

    handle: ServerHandle
    project_id: int
    run_ids: tuple[int, ...]
    """The completed runs it answers for, as ``run-<id>``."""


class ModelServers:
    """At most one model server, for the project last asked about; thread-safe."""

    def __init__(self, starter: ServerStarter = start_project_server) -> None:
        self.starter = starter
        """The function that starts a server (a stand-in in some tests)."""
        self._lock = threading.Lock()
        # Held while a server starts, so two workers asking at once get the same server.
        self._start_lock = threading.Lock()
        self._running: RunningServer | None = None
        self._closed = False

    def server_for(
        self, db_path: Path, project: Project, run_ids: tuple[int, ...], on_status: StatusCallback
    ) -> ServerHandle:
        """A server for ``project`` that answers for ``run_ids``: the running one, else a new one.

        Blocks while a server starts (seconds, minutes when a model is converted first).
        """
        with self._start_lock:
            with self._lock:
                if self._closed:
                    raise ModelError("The app is closing; no model server is started.")
                running = self._running
                if (
                    running is not None
                    and running.project_id == project.id
                    and set(run_ids) <= set(running.run_ids)
                    and running.handle.process.poll() is None
                ):
                    return running.handle
                self._running = None
            if running is not None:
                running.handle.stop()
            handle = self.starter(db_path, project, on_status)
            with self._lock:
                closed = self._closed
                if not closed:
                    self._running = RunningServer(handle, project.id, run_ids)
            if closed:
                handle.stop()
                raise ModelError("The app is closing; no model server is started.")
            return handle

    def stop(self) -> None:
        """Stop the server, if one runs, and start no other."""
        with self._lock:
            self._closed = True
            running, self._running = self._running, None
        if running is not None:
            running.handle.stop()

    @property
    def running(self) -> RunningServer | None:
        """The server running now, if any."""
        return self._running


def completed_run_ids(database: sqlite_utils.Database, project: Project) -> tuple[int, ...]:
    """The project's completed runs with an adapter: what its server answers for."""
    return tuple(
        run.id
        for run in list_runs(database, project.id)
        if run.status == "completed" and run.adapter_path
    )


class AppServices:
    """The database connection (one thread at a time), its path and the model servers."""

    def __init__(
        self, database: sqlite_utils.Database, db_path: Path, servers: ModelServers
    ) -> None:
        self.db_path = db_path
        """The database file; child processes (runs, servers) open it themselves."""
        self.servers = servers
        """The model server the app starts on first need."""
        self._database = database
        self._lock = threading.RLock()

    @contextmanager
    def database(self) -> Iterator[sqlite_utils.Database]:
        """The shared connection, held by the calling thread for the block.

        Two threads must not interleave statements on one connection: one's ``BEGIN`` inside
        the other's transaction fails.
        """
        with self._lock:
            yield self._database


class ProvidesServices:
    """Mixed into the app: where screens find the shared services."""

    services: AppServices


def services(node: DOMNode) -> AppServices:
    """The services of the app ``node`` belongs to."""
    app = node.app
    if not isinstance(app, ProvidesServices):
        raise TypeError(f"{type(app).__name__} does not provide tunesmith services")
    return app.services
