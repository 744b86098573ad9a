"""Drive headless Chromium over the DevTools protocol, with the Python standard library only.

Chromium's ``--remote-debugging-pipe`` reads protocol commands from its file descriptor 3 and writes answers
and events to 4, each a JSON message ending in a NUL byte: no websocket client, no browser download, no
extra package. Used by tests/test_web.py and benchmarks/web_latency.py to open the example page, type into
it and evaluate JavaScript in it.

The browser is kept off the network except for 127.0.0.1: background services are disabled and every host
name but 127.0.0.1 resolves to nothing.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",  # as root (CI, containers) Chromium refuses to start with its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-pipe",
]
INSTALL_HINT = "Install Chromium (Debian: apt-get install -y chromium)."


class BrowserError(RuntimeError):
    """A protocol error, an exception thrown by evaluated JavaScript, or a browser that stopped answering."""


def _above_9(fd: int) -> int:
    """A copy of ``fd`` numbered 10 or more (the original is closed)."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return copy


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class Chromium:
    """One headless Chromium process with a fresh profile (no cache from earlier runs); a context manager."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0):
        executable = executable or find_chromium()
        if executable is None:
            raise FileNotFoundError(f"no Chromium found (looked for {', '.join(BROWSERS)}). {INSTALL_HINT}")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="s4rec-chromium-")
        commands_read, self._commands = os.pipe()  # we write commands, the browser reads them on its fd 3
        self._answers, answers_write = os.pipe()  # the browser writes on its fd 4, we read
        # The browser's ends move to descriptors >= 10, so that putting them on 3 and 4 overwrites neither.
        commands_read, answers_write = (_above_9(fd) for fd in (commands_read, answers_write))
        # bash puts the two ends on descriptors 3 and 4 of the browser, as the protocol expects (dash,
        # Debian's sh, cannot redirect descriptors above 9).
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{answers_write} {commands_read}<&- {answers_write}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", script, executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(commands_read, answers_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []  # events received while waiting for answers (console messages, network)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._commands, self._answers):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ protocol

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float | None = None):
        """Send a command and wait for its answer (events that arrive meanwhile are kept in ``events``)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}")
                return answer.get("result", {})
            self.events.append(answer)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s{self._console_tail()}")
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium exited (code {self.process.poll()}){self._console_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _console_tail(self) -> str:
        lines = [line for line in self.console() if line][-5:]
        return "; the page's console: " + " | ".join(lines) if lines else ""

    def console(self) -> list[str]:
        """The page's console messages and uncaught exceptions so far."""
        out = []
        for event in self.events:
            if event.get("method") == "Runtime.consoleAPICalled":
                args = event["params"].get("args", [])
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif event.get("method") == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                out.append(details.get("exception", {}).get("description") or details.get("text", ""))
        return out

    # ----------------------------------------------------------------------------------------------- pages

    def open(self, url: str, network: bool = False) -> Page:
        """A new tab showing ``url`` once it has loaded. ``network``: record its requests (Network events)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Runtime.enable")
        if network:
            page.send("Network.enable")
        page.send("Page.enable")
        page.send("Page.navigate", {"url": url})
        page.wait_for_event("Page.loadEventFired")
        return page


class Page:
    """A tab of :class:`Chromium`, attached with its own protocol session."""

    def __init__(self, browser: Chromium, session: str):
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict | None = None, timeout: float | None = None):
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def wait_for_event(self, method: str, timeout: float | None = None) -> dict:
        browser = self.browser
        for event in browser.events:
            if event.get("method") == method and event.get("sessionId") == self.session:
                return event
        deadline = time.monotonic() + (browser.timeout if timeout is None else timeout)
        while True:
            event = browser._read(deadline)
            browser.events.append(event)
            if event.get("method") == method and event.get("sessionId") == self.session:
                return event

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise), as JSON data."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript threw: {text}")
        return result["result"].get("value")

    def type_text(self, selector: str, text: str) -> None:
        """Replace the text of an input field: cleared, then typed (as keyboard input) into it."""
        self.evaluate(f"(e => {{ e.focus(); e.value = ''; }})(document.querySelector({json.dumps(selector)}))")
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: str | Path, width: int = 1200, height: int = 900) -> Path:
        """Write a PNG of the page, ``width`` x ``height`` CSS pixels (at least; the whole page when taller), to
        ``path``."""
        page_height = self.evaluate("document.documentElement.scrollHeight") or height
        metrics = {"width": width, "height": max(height, int(page_height)), "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics)
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def requests(self) -> dict[str, int]:
        """URL -> bytes received, for the requests that finished (needs ``open(..., network=True)``)."""
        urls, sizes = {}, {}
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            if event.get("method") == "Network.responseReceived":
                urls[event["params"]["requestId"]] = event["params"]["response"]["url"]
            elif event.get("method") == "Network.loadingFinished":
                sizes[event["params"]["requestId"]] = int(event["params"]["encodedDataLength"])
        return {urls[r]: size for r, size in sizes.items() if r in urls}
