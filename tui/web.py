"""The app in a browser: textual-serve runs ``tunesmith --db PATH`` for each browser tab.

textual-serve's server is aiohttp; one middleware guards every request before any route:

- bound to a loopback address the app answers at ``/``, but only to pages of this machine: a
  request whose Host is not a loopback name is refused (a DNS-rebinding page), and so is any
  request a page of another origin sends (a WebSocket is not bound by the same-origin rule, so
  any site the person visits could otherwise type into the app);
- bound anywhere else, every path sits under a random token, ``/<token>/``, printed in the URL
  to open; a request whose first path segment is not the token gets 403.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from textual_serve.server import Server

from store.errors import InputError

TOKEN_BYTES = 32
"""Random bytes in the URL token when the app is served off loopback."""

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
"""Addresses that mean every interface; a browser cannot open them, so the URL names the host."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) can only be reached from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebAddress:
    """Where the app is served, and the token every path starts with (None on loopback)."""

    host: str
    port: int
    token: str | None

    @property
    def prefix(self) -> str:
        """The path every page of the app is under."""
        return f"/{self.token}/" if self.token else "/"

    @property
    def url(self) -> str:
        """The URL a person opens in a browser."""
        name = socket.gethostname() if self.host in _WILDCARD_HOSTS else self.host
        if ":" in name:
            name = f"[{name}]"
        return f"http://{name}:{self.port}{self.prefix}"


def web_address(host: str, port: int) -> WebAddress:
    """The address to serve at: a fresh random token unless ``host`` is loopback."""
    token = None if is_loopback(host) else secrets.token_urlsafe(TOKEN_BYTES)
    return WebAddress(host, port, token)


def app_command(db_path: Path) -> str:
    """The shell command textual-serve runs for each browser tab: this tunesmith, on ``db_path``."""
    return shlex.join(
        [
            sys.executable,
            "-c",
            "from tui.cli.main import main; main()",
            "--db",
            str(db_path.resolve()),
        ]
    )


def refusal(request: web.Request, address: WebAddress) -> str | None:
    """Why ``request`` is refused at ``address`` (a 403), or None when it may go on."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        return "a page of another origin may not use the app"
    if address.token is None:
        if not is_loopback(urlsplit(f"//{request.host}").hostname or ""):
            return "the app answers only pages of this machine"
        return None
    segment = request.path.removeprefix("/").partition("/")[0]
    if not hmac.compare_digest(segment.encode(), address.token.encode()):
        return "open the URL tunesmith printed, with its token"
    return None


def _guard(address: WebAddress) -> Middleware:
    """The middleware that answers 403 to every request ``refusal`` refuses."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        reason = refusal(request, address)
        if reason is not None:
            raise web.HTTPForbidden(text=f"403: {reason}\n")
        return await handler(request)

    return guard


class AppServer(Server):
    """textual-serve's server behind the guard, its pages under the address's prefix."""

    def __init__(self, command: str, address: WebAddress) -> None:
        super().__init__(command, host=address.host, port=address.port, title="tunesmith")
        self.address = address
        """Where the app is served, with its token."""
        self.sessions: set[asyncio.Task[Any]] = set()
        """The handlers of the open browser tabs, each driving one app process."""

    async def _make_app(self) -> web.Application:
        pages = await super()._make_app()
        if self.address.token is None:
            pages.middlewares.append(_guard(self.address))
            return pages
        root = web.Application(middlewares=[_guard(self.address)])
        root.add_subapp(self.address.prefix, pages)
        return root

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        # The page names the WebSocket and static files by absolute URL: build them from the host
        # the browser used (an SSH tunnel's port, a machine's other name), so they reach this
        # server and pass the origin check. No await comes between this and their use.
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        session = asyncio.current_task()
        assert session is not None
        self.sessions.add(session)
        try:
            return await super().handle_websocket(request)
        finally:
            self.sessions.discard(session)

    async def on_startup(self, app: web.Application) -> None:
        print(f"tunesmith: serving the app at {self.address.url}  (Ctrl+C stops)", flush=True)

    async def on_shutdown(self, app: web.Application) -> None:
        # An open tab's handler runs until its WebSocket closes; aiohttp would wait a minute for
        # it. Cancelled, it closes the socket and quits its app process.
        for session in self.sessions:
            session.cancel()


def serve_app(db_path: Path, address: WebAddress) -> None:
    """Serve the app on ``db_path`` to browsers at ``address`` until Ctrl+C or SIGTERM."""
    server = AppServer(app_command(db_path), address)
    try:
        server.serve()
    except OSError as error:
        reason = error.strerror or str(error)
        raise InputError(f"cannot listen on {address.host}:{address.port}: {reason}") from error
