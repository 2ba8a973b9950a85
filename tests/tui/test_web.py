"""``tunesmith --web``: the guard on every request, the real server, and the app in Chromium."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from tui.cli.main import cli
from tui.web import AppServer, WebAddress, app_command, is_loopback, web_address

TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]
"""The ``tunesmith`` command, run from this checkout."""

AREA_TITLES = ("Chat", "Dataset", "Train", "Compare")
"""The four areas, as the tab line on top of the app names them."""

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
"""Debian's Chromium, where it is installed (``apt-get install chromium``)."""

STARTUP_SECONDS = 60.0
"""How long the server, the browser or the app in it may take to come up on a busy machine."""

STOP_SECONDS = 15.0
"""How long SIGTERM may take to stop the server, a browser tab still open on it."""

TERMINAL_PROBE = """
window.__terminals = [];
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    window.__terminals.push(value);
    Object.defineProperty(this, "terminal", {
      value, writable: true, configurable: true, enumerable: true,
    });
  },
});
"""
"""Keeps each xterm.js terminal textual-serve's page makes (it holds them in no global)."""

SCREEN_TEXT = """(() => {
  const terminal = (window.__terminals || []).find((t) => t && t.buffer && t.buffer.active);
  if (!terminal) return "";
  const lines = [];
  for (let row = 0; row < terminal.rows; row++) {
    const line = terminal.buffer.active.getLine(row);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
})()"""
"""The text the page's terminal shows, row by row (it draws on a canvas: no text in the DOM)."""


FIRST_PROMPT = "Great phone, the battery lasts two days."
"""The first example's prompt in the ``reviews`` project, as the Dataset area shows it."""


def shows_the_areas(screen: str) -> bool:
    """Whether the top line names the four areas and the picker offers ``reviews``."""
    top_line = screen.partition("\n")[0]
    return all(title in top_line for title in AREA_TITLES) and "reviews" in screen


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1"])
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert is_loopback(host)
    assert web_address(host, 8000).token is None
    assert web_address(host, 8000).prefix == "/"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.org", "10.0.0.1"])
def test_other_hosts_get_a_fresh_random_token(host: str) -> None:
    first, second = web_address(host, 8000), web_address(host, 8000)
    assert not is_loopback(host)
    assert first.token and second.token and first.token != second.token
    assert len(first.token) >= 40
    assert first.url.endswith(f":8000/{first.token}/")


def test_the_url_names_a_host_a_browser_can_open() -> None:
    assert WebAddress("::1", 9000, None).url == "http://[::1]:9000/"
    assert WebAddress("0.0.0.0", 9000, "t").url == f"http://{socket.gethostname()}:9000/t/"


def test_the_app_command_runs_this_tunesmith_on_the_database(tmp_path: Path) -> None:
    command = app_command(tmp_path / "my data.db")
    assert command.startswith(sys.executable)
    assert f"--db '{tmp_path / 'my data.db'}'" in command


def test_web_takes_no_command_and_host_needs_web(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "t.db")]
    with_command = CliRunner().invoke(cli, [*db, "--web", "project", "list"])
    assert with_command.exit_code == 2
    assert "--web serves the app; it takes no command" in with_command.output
    without_web = CliRunner().invoke(cli, [*db, "--port", "9000", "project", "list"])
    assert without_web.exit_code == 2
    assert "--port goes with --web" in without_web.output


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*TUNESMITH, "--db", str(tmp_path / "t.db"), "--web", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    )
    assert "Traceback" not in result.stderr


@pytest.fixture
def served_app(db_path: Path, tmp_path: Path) -> Iterator[str]:
    """``tunesmith --web`` on loopback, serving the ``reviews`` database; yields its URL."""
    log_path = tmp_path / "web.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*TUNESMITH, "--db", str(db_path), "--web", "--port", str(free_port())],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (found := re.search(r"serving the app at (http://\S+)", log_path.read_text())):
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server printed no URL"
            time.sleep(0.1)
        yield found.group(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise
    assert server.returncode == 0, log_path.read_text()


async def test_the_server_answers_pages_of_this_machine_only(served_app: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(served_app) as index:
            assert index.status == 200
            page = await index.text()
        assert f'data-session-websocket-url="{served_app.replace("http", "ws", 1)}ws"' in page
        async with session.get(f"{served_app}static/js/textual.js") as script:
            assert script.status == 200
        port = served_app.rsplit(":", 1)[1].rstrip("/")
        async with session.get(served_app, headers={"Host": f"attacker.example:{port}"}) as rebound:
            assert rebound.status == 403
        async with session.get(
            f"{served_app}ws", headers={"Origin": "http://attacker.example"}
        ) as cross_site:
            assert cross_site.status == 403
            assert "another origin" in await cross_site.text()


async def test_off_loopback_every_path_needs_the_token(tmp_path: Path) -> None:
    address = WebAddress("192.0.2.7", 8000, "s3cret-token")
    pages = await AppServer(app_command(tmp_path / "t.db"), address)._make_app()
    async with TestClient(TestServer(pages, host="127.0.0.1")) as client:
        for path in (
            "/",
            "/ws",
            "/static/js/textual.js",
            "/wrong/",
            "/s3cret-toke/",
            "/x/s3cret-token/",
        ):
            response = await client.get(path)
            assert response.status == 403, path
            assert "with its token" in await response.text()
        index = await client.get("/s3cret-token/")
        assert index.status == 200
        host = f"127.0.0.1:{client.port}"
        assert f'data-session-websocket-url="ws://{host}/s3cret-token/ws"' in await index.text()
        script = await client.get("/s3cret-token/static/js/textual.js")
        assert script.status == 200


class DevTools:
    """One Chromium page driven over the Chrome DevTools protocol."""

    def __init__(self, socket_: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket_
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.socket.receive()).data)
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def wait_for(self, shown: Callable[[str], bool], what: str, deadline: float) -> str:
        """The terminal's text once ``shown`` holds of it; fails at ``deadline``."""
        screen = ""
        while not shown(screen):
            assert time.monotonic() < deadline, f"the page never showed {what}:\n{screen}"
            await asyncio.sleep(0.25)
            result = await self.call("Runtime.evaluate", expression=SCREEN_TEXT, returnByValue=True)
            screen = str(result["result"].get("value", ""))
        return screen

    async def press_enter(self) -> None:
        """Press Enter in the terminal, as a person would after clicking into it."""
        focus = "document.querySelector('textarea.xterm-helper-textarea').focus()"
        await self.call("Runtime.evaluate", expression=focus)
        for event in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=event,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                **({"text": "\r"} if event == "keyDown" else {}),
            )


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[str]:
    """Headless Chromium with its DevTools port open; yields the DevTools HTTP address."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium)")
    port = free_port()
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--no-first-run",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1200,720",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        browser.terminate()
        browser.wait(timeout=STARTUP_SECONDS)


async def test_the_app_opens_in_a_real_browser(
    chromium: str, served_app: str, tmp_path: Path
) -> None:
    """The page shows the app and takes keys; its screenshot is left as ``web.png`` in tmp_path."""
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + STARTUP_SECONDS
        pages: list[dict[str, Any]] = []
        while not pages:
            assert time.monotonic() < deadline, "Chromium's DevTools never answered"
            try:
                async with session.get(f"{chromium}/json/list") as listing:
                    pages = [t for t in await listing.json() if t["type"] == "page"]
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = DevTools(ws)
            await page.call("Page.enable")
            await page.call("Page.addScriptToEvaluateOnNewDocument", source=TERMINAL_PROBE)
            await page.call("Page.navigate", url=served_app)
            await page.wait_for(shows_the_areas, "the four areas and the picker", deadline)
            # Keys typed in the page reach the app: Enter opens the project the picker offers.
            await page.press_enter()
            await page.wait_for(lambda screen: FIRST_PROMPT in screen, "the examples", deadline)
            shot = await page.call("Page.captureScreenshot", format="png")
    (tmp_path / "web.png").write_bytes(base64.b64decode(shot["data"]))
