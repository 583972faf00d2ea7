"""End-to-end fixtures: one real study (Ray, SQLite, artifacts) for the session, and a headless Chromium.

The browser is driven over the Chrome DevTools Protocol on a pipe (`--remote-debugging-pipe`: commands
on fd 3, replies and events on fd 4, each a JSON message ended by NUL), so the tests see what a user's
browser sees (console messages, uncaught exceptions, failed loads, whether each image decoded) without
a websocket client or a WebDriver.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import run_sweep

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _sweep(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_sweep(*args, cwd=cwd, timeout=timeout, columns=120)


@pytest.fixture(scope="session")
def sweep():
    """The real `sweep` console script: sweep(*args, cwd=None, timeout=120) -> CompletedProcess."""
    return _sweep


@pytest.fixture
def sweep_main(capsys, monkeypatch):
    """`sweep ARGS` through the console script's entry point in this process (no interpreter start-up):
    sweep_main(*args, cwd=None) -> (exit code, stdout, stderr)."""
    from sweep import cli

    def call(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["sweep", *args])
        capsys.readouterr()
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


# --- the shared study ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredStudy:
    root: Path
    name: str


@pytest.fixture(scope="session")
def review_study(ray_session, make_study, tmp_path_factory) -> StoredStudy:
    """A tiny ring8 ablation, run for real: lambda_cat 1 -> 0 (the paper's Figure 1) and a dataset level
    whose files are missing, so that every one of its runs crashes (a level the report must show)."""
    from sweep import runner, spec
    from sweep.store import open_store

    tmp = tmp_path_factory.mktemp("review")
    base = {**spec.load(make_study(tmp / "b.yaml")).base, "lambda_cat": 1.0, "data_dir": str(tmp / "nowhere")}
    path = make_study(
        tmp / "review.yaml",
        name="review",
        claim="without the information term (lambda_cat = 0) the code keeps less mutual information",
        base=base,
        factors={"lambda_cat": [0.0], "dataset": ["fashion-mnist"]},
        seeds=3,
        objectives=["mi/cat_ratio", "loss/g"],  # both measured on every dataset
        budget={"steps": 30, "report_every": 10},
        verdict={
            "metric": "mi/cat_ratio",
            "factor": "lambda_cat",
            "baseline": 1.0,
            "treatment": 0.0,
            "direction": "less",
            "min_effect": 0.05,
        },
    )
    summary = runner.run(spec.load(path), store=open_store(tmp / "runs"))
    assert (summary.completed, summary.failed) == (6, 3), summary
    return StoredStudy(tmp / "runs", "review")


# --- the browser --------------------------------------------------------------------------------


@dataclass
class Page:
    """What a page did while it loaded."""

    images: list[dict[str, Any]]  # per <img>: complete, naturalWidth, alt
    errors: list[str]  # console errors, uncaught exceptions, failed loads
    screenshot: bytes  # PNG of the viewport
    title: str


@dataclass
class Browser:
    """Headless Chromium over a DevTools pipe; `load(url)` returns a `Page`."""

    process: subprocess.Popen
    to_browser: Any
    events: queue.Queue = field(default_factory=queue.Queue)  # everything the browser sent, in order
    pending: list[dict] = field(default_factory=list)  # events read while waiting for a reply
    next_id: int = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.to_browser.write(json.dumps(message).encode() + b"\0")
        self.to_browser.flush()
        while True:
            reply = self.events.get(timeout=timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.pending.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        while True:
            for i, event in enumerate(self.pending):
                if event.get("method") == method:
                    return self.pending.pop(i)
            self.pending.append(self.events.get(timeout=timeout))

    def load(self, url: str, *, width: int = 1280, height: int = 2000) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.pending.clear()
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired")
        script = (
            "JSON.stringify({title: document.title, images: [...document.images].map(i => ({complete: i.complete,"
            " naturalWidth: i.naturalWidth, alt: i.alt}))})"
        )
        result = self.send(
            "Runtime.evaluate", {"expression": script, "returnByValue": True, "awaitPromise": True}, session
        )
        state = json.loads(result["result"]["value"])
        shot = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session)["data"])
        self.send("Runtime.evaluate", {"expression": "1"}, session)  # flush events raised during the capture
        errors = []
        for event in self.pending:
            p = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                errors.append(f"uncaught: {p['exceptionDetails'].get('exception', {}).get('description', p)}")
            elif event.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console.error: " + " ".join(str(a.get("value", a)) for a in p.get("args", [])))
            elif event.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        self.send("Target.closeTarget", {"targetId": target})
        return Page(state["images"], errors, shot, state["title"])


def _read_messages(fd: int, events: queue.Queue) -> None:
    buffer = b""
    while chunk := os.read(fd, 65536):
        buffer += chunk
        *messages, buffer = buffer.split(b"\0")
        for m in messages:
            events.put(json.loads(m))


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> Browser:
    if CHROMIUM is None:
        pytest.skip(reason="chromium is not installed (apt-get install -y chromium)")
    commands_r, commands_w = os.pipe()
    replies_r, replies_w = os.pipe()

    def child_fds() -> None:  # the DevTools pipe: the browser reads fd 3 and writes fd 4
        r, w = os.dup(commands_r), os.dup(replies_w)
        os.dup2(r, 3)
        os.dup2(w, 4)

    profile = tmp_path_factory.mktemp("chromium-profile")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    process = subprocess.Popen(
        [CHROMIUM, *flags], preexec_fn=child_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    os.close(commands_r)
    os.close(replies_w)
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_read_messages, args=(replies_r, events), daemon=True).start()
    b = Browser(process, os.fdopen(commands_w, "wb"), events)
    try:
        b.send("Browser.getVersion", timeout=60)
        yield b
    finally:
        with contextlib.suppress(Exception):  # already gone
            b.send("Browser.close", timeout=10)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
