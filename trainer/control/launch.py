"""Start the model server in its own process and wait until it is ready; stdlib only, no torch."""

from __future__ import annotations

import ipaddress
import queue
import secrets
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import sqlite_utils

from store.errors import InputError, ModelError
from store.projects import Project, get_project_by_id
from store.runs import Run, get_run, list_runs
from trainer.control.process import child_command, child_environment, reported_error

API_KEY_ENV = "TUNESMITH_API_KEY"
"""Environment variable holding the server's bearer token (unseen by ``ps``, unlike a flag)."""

READY_PREFIX = "READY "
"""Start of the one stdout line the server prints once it listens, followed by its URL."""

STATUS_PREFIX = "status: "
"""Start of a stderr line meant for the person waiting (e.g. a conversion in progress)."""

BASE_MODEL_NAME = "base"
"""The model name that answers with every adapter disabled."""

_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}


def is_loopback(host: str) -> bool:
    """Whether a host name or address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_model_name(run_id: int) -> str:
    """The model name under which run ``run_id``'s adapter answers."""
    return f"run-{run_id}"


def served_runs(
    db: sqlite_utils.Database, project: Project, run_ids: Sequence[int] | None
) -> list[Run]:
    """The completed runs a server for ``project`` answers with: those named, else all of them."""
    if run_ids is None:
        return [
            run
            for run in list_runs(db, project.id)
            if run.status == "completed" and run.adapter_path
        ]
    chosen: list[Run] = []
    for run_id in run_ids:
        run = get_run(db, run_id)
        if run.project_id != project.id:
            owner = get_project_by_id(db, run.project_id)
            raise InputError(
                f"run {run_id} belongs to project {owner.name!r}, not {project.name!r}"
            )
        if run.status != "completed" or not run.adapter_path:
            raise InputError(f"run {run_id} is {run.status}; only a completed run can answer")
        chosen.append(run)
    return chosen


@dataclass
class _ServerOutput:
    """What the stderr reader learned: the startup error and the last line, for messages."""

    error_message: str | None = None
    last_line: str | None = None


@dataclass
class ServerHandle:
    """A running model server: where to reach it, its key, and how to stop it."""

    base_url: str
    """``http://HOST:PORT`` of the server; the OpenAI API is under ``/v1``."""
    api_key: str | None
    """The bearer token clients must send, or None when the server takes any request."""
    process: subprocess.Popen[str]
    log_path: Path | None = None
    """File that receives everything the server writes, when one was asked for."""
    _readers: list[threading.Thread] = field(default_factory=list, repr=False)
    _log_file: IO[str] | None = field(default=None, repr=False)
    _output: _ServerOutput = field(default_factory=_ServerOutput, repr=False)

    def wait(self) -> str:
        """Block until the server process ends by itself; return one line saying how it ended."""
        return_code = self.process.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        message = f"The model server exited with code {return_code}"
        if self._output.last_line:
            message += f": {self._output.last_line}"
        if self.log_path is not None:
            message += f" (see {self.log_path})"
        return message

    def stop(self, timeout: float = 10) -> None:
        """Terminate the server, kill it if it does not exit within ``timeout`` seconds."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(timeout=timeout)
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    base_model: str | None = None,
    *,
    adapters: Mapping[str, Path] | None = None,
    db_path: Path | None = None,
    project: str | None = None,
    run_ids: Sequence[int] | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_path: Path | None = None,
    on_status: Callable[[str], None] | None = None,
    startup_timeout: float = 900,
    extra_env: dict[str, str] | None = None,
    trust_remote_code: bool = False,
) -> ServerHandle:
    """Start ``python -m trainer.serving.serve``, return once it listens; failures are ModelErrors.

    Serve either ``base_model`` with ``adapters`` (model name -> adapter folder), or the project
    ``project`` of the database ``db_path``: its base model and system prompt, with the
    completed runs in ``run_ids`` (None: every completed run; empty: none).
    ``api_key`` is the bearer token clients must send: None makes a fresh random one, ``""``
    none; it reaches the server through its environment, never its command line.
    ``on_status`` is called on a background thread with each status line. Everything the server
    writes goes to ``log_path`` when given. The server also exits when this process dies,
    because its stdin closes.
    """
    if (base_model is None) == (project is None) or (project is not None and db_path is None):
        raise ValueError("start_server needs base_model, or db_path and project")
    described = f"project {project}" if project is not None else str(base_model)
    key = secrets.token_urlsafe(32) if api_key is None else api_key
    env = child_environment({**(extra_env or {}), API_KEY_ENV: key})
    arguments: list[str] = []
    if project is not None:
        arguments += ["--db", str(db_path), "--project", project]
        if run_ids is not None and not run_ids:
            arguments.append("--base-only")
        for run_id in run_ids or []:
            arguments += ["--run", str(run_id)]
    else:
        arguments += ["--base-model", str(base_model)]
        for name, folder in (adapters or {}).items():
            arguments += ["--adapter", f"{name}={folder}"]
    arguments += ["--host", host, "--port", str(port), "--exit-on-stdin-eof"]
    if trust_remote_code:
        arguments.append("--trust-remote-code")
    log_file = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("a", encoding="utf-8")
    try:
        process = subprocess.Popen(
            child_command("trainer.serving.serve", arguments),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
        )
    except OSError as exc:
        if log_file is not None:
            log_file.close()
        raise ModelError(f"Cannot start the model server: {exc}") from exc

    log_lock = threading.Lock()
    ready_urls: queue.Queue[str | None] = queue.Queue()
    output = _ServerOutput()

    def log(line: str) -> None:
        if log_file is not None:
            with log_lock:
                log_file.write(line)
                log_file.flush()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(READY_PREFIX):
                ready_urls.put(line[len(READY_PREFIX) :].strip())
            log(line)
        ready_urls.put(None)

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log(line)
            text = line.rstrip("\r\n")
            if text.strip():
                output.last_line = text.strip()
            reason = reported_error(text)
            if reason is not None:
                output.error_message = reason
            elif text.startswith(STATUS_PREFIX) and on_status is not None:
                # A failing callback must not stop the draining, or the server blocks on stderr.
                try:
                    on_status(text[len(STATUS_PREFIX) :].strip())
                except Exception as exc:
                    log(f"on_status failed: {exc!r}\n")

    readers = [
        threading.Thread(target=read_stdout, name="server-stdout", daemon=True),
        threading.Thread(target=read_stderr, name="server-stderr", daemon=True),
    ]
    for reader in readers:
        reader.start()
    handle = ServerHandle("", key or None, process, log_path, readers, log_file, output)
    try:
        ready_url = ready_urls.get(timeout=startup_timeout)
    except queue.Empty:
        handle.stop()
        raise ModelError(
            f"The model server for {described} did not start within {startup_timeout:g} s."
        ) from None
    except BaseException:
        handle.stop()
        raise
    if ready_url is None:
        return_code = process.wait()
        readers[1].join(timeout=10)
        handle.stop()
        raise ModelError(_startup_failure(described, return_code, output, log_path))
    handle.base_url = _connectable(ready_url)
    return handle


def _startup_failure(
    described: str, return_code: int, output: _ServerOutput, log_path: Path | None
) -> str:
    """One line saying why the server exited before it was ready."""
    if output.error_message:
        return output.error_message
    message = f"The model server for {described} exited with code {return_code} before it was ready"
    if output.last_line:
        message += f": {output.last_line}"
    if log_path is not None:
        message += f" (see {log_path})"
    return message


def _connectable(url: str) -> str:
    """The URL with a listen-everywhere host swapped for loopback, so this process can connect."""
    scheme, _, rest = url.partition("://")
    host, _, port = rest.rpartition(":")
    return f"{scheme}://{_WILDCARD_HOSTS.get(host, host)}:{port}"
