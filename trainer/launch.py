"""Start the model server in its own process and wait until it is ready; stdlib only, no torch."""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from store.errors import ModelError

TOKEN_ENV = "TUNESMITH_SERVER_TOKEN"
"""Environment variable the server reads its bearer token from (unseen by ``ps``)."""

READY_PREFIX = "READY "
"""Start of the one stdout line the server prints once it listens, followed by its URL."""

STATUS_PREFIX = "status: "
"""Start of a stderr line meant for the person waiting (e.g. a conversion in progress)."""

ERROR_PREFIX = "error: "
"""Start of the stderr line that says why the server could not start."""

_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}


@dataclass
class _ServerOutput:
    """What the stderr reader learned: the startup error and the last line, for messages."""

    error_message: str | None = None
    last_line: str | None = None


@dataclass
class ServerHandle:
    """A running model server: where to reach it, its token, and how to stop it."""

    base_url: str
    token: str | None
    process: subprocess.Popen[str]
    log_path: Path | None = None
    """File that receives everything the server writes, when one was asked for."""
    _readers: list[threading.Thread] = field(default_factory=list, repr=False)
    _log_file: IO[str] | None = field(default=None, repr=False)

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
    base_model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_path: Path | None = None,
    on_status: Callable[[str], None] | None = None,
    startup_timeout: float = 900,
    extra_env: dict[str, str] | None = None,
    trust_remote_code: bool = False,
) -> ServerHandle:
    """Start ``python -m trainer.serve`` and return once it listens; failures are ModelErrors.

    The server gets a fresh random token unless ``extra_env`` sets ``TUNESMITH_SERVER_TOKEN``
    (empty means none). ``on_status`` is called on a background thread with each status line.
    Everything the server writes goes to ``log_path`` when given. The server also exits when
    this process dies, because its stdin closes.
    """
    env = dict(os.environ)
    env[TOKEN_ENV] = secrets.token_urlsafe(32)
    env.update(extra_env or {})
    env["PYTHONUNBUFFERED"] = "1"
    # The server runs this same checkout's code, whatever the working directory.
    source_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    # Progress bars are carriage-return noise in a log; status lines say what is happening.
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    token = env[TOKEN_ENV] or None
    command = [
        sys.executable,
        "-m",
        "trainer.serve",
        "--base-model",
        base_model,
        "--host",
        host,
        "--port",
        str(port),
        "--exit-on-stdin-eof",
    ]
    if trust_remote_code:
        command.append("--trust-remote-code")
    log_file = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("a", encoding="utf-8")
    try:
        process = subprocess.Popen(
            command,
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
            if text.startswith(ERROR_PREFIX):
                output.error_message = text[len(ERROR_PREFIX) :].strip()
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
    handle = ServerHandle("", token, process, log_path, readers, log_file)
    try:
        ready_url = ready_urls.get(timeout=startup_timeout)
    except queue.Empty:
        handle.stop()
        raise ModelError(
            f"The model server for {base_model} did not start within {startup_timeout:g} s."
        ) from None
    except BaseException:
        handle.stop()
        raise
    if ready_url is None:
        return_code = process.wait()
        readers[1].join(timeout=10)
        handle.stop()
        raise ModelError(_startup_failure(base_model, return_code, output, log_path))
    handle.base_url = _connectable(ready_url)
    return handle


def _startup_failure(
    base_model: str, return_code: int, output: _ServerOutput, log_path: Path | None
) -> str:
    """One line saying why the server exited before it was ready."""
    if output.error_message:
        return output.error_message
    message = (
        f"The model server for {base_model} exited with code {return_code} before it was ready"
    )
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
