"""`sweep dashboard` serves optuna-dashboard on the real storage: studies, trials, notes and artifacts over HTTP."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from datetime import datetime

import pytest

from helpers import run_sweep, start_sweep

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def get_json(url: str) -> dict:
    return json.loads(get(url)[2])


def read_until(process: subprocess.Popen, pattern: str, timeout: float = 60) -> tuple[re.Match | None, str]:
    """Lines of the process's stdout until one matches (read in a thread, so a silent process cannot hang us)."""
    lines: list[str] = []
    found = threading.Event()
    match: list[re.Match] = []

    def reader() -> None:
        for line in process.stdout:
            lines.append(line)
            if m := re.search(pattern, line):
                match.append(m)
                found.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    found.wait(timeout)
    return (match[0] if match else None), "".join(lines)


def test_dashboard_serves_trials_notes_and_artifacts_and_stops_on_ctrl_c(review_study):
    process = start_sweep(
        "dashboard",
        review_study.name,
        "--port",
        "0",
        "--root",
        str(review_study.root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        match, output = read_until(process, r"http://127\.0\.0\.1:(\d+)/dashboard/studies/(\d+)")
        assert match, (output, process.poll(), process.stderr.read() if process.poll() is not None else "")
        base, study_id = f"http://127.0.0.1:{match.group(1)}", int(match.group(2))

        status, kind, page = get(f"{base}/dashboard/studies/{study_id}")
        assert status == 200 and "text/html" in kind and b"<html" in page.lower()

        studies = get_json(f"{base}/api/studies")["study_summaries"]
        assert [(s["study_name"], s["study_id"]) for s in studies] == [("review", study_id)]

        detail = get_json(f"{base}/api/studies/{study_id}")
        assert detail["objective_names"] == ["mi/cat_ratio", "loss/g"]
        assert "### Verdict:" in detail["note"]["body"] and "**Claim:**" in detail["note"]["body"]
        trials = detail["trials"]
        assert len(trials) == 9
        for trial in trials:
            assert trial["note"]["body"].startswith("### "), trial["note"]
            assert any(a["filename"] == "config.json" for a in trial["artifacts"])
        finished = [t for t in trials if t["state"] == "Complete"]
        assert len(finished) == 6
        crashed = [t for t in trials if t["state"] == "Fail"]
        assert all("crashed" in t["note"]["body"] for t in crashed)

        for trial in finished:
            # the learning curve of the first objective (mi/cat_ratio, measured at every report), for the
            # dashboard to draw; Optuna's Trial.report would refuse it in a study with two objectives
            assert [v["step"] for v in trial["intermediate_values"]] == [10, 20, 30], trial["intermediate_values"]
            assert all(isinstance(v["value"], float) for v in trial["intermediate_values"])
            # the trial's duration in the dashboard is the training time its note gives ("Steps: 30 in 4.2 s")
            start, end = (datetime.fromisoformat(trial[k]) for k in ("datetime_start", "datetime_complete"))
            noted = float(re.search(r"\*\*Steps:\*\* 30 in ([\d.]+) s", trial["note"]["body"]).group(1))
            assert (end - start).total_seconds() == pytest.approx(noted, abs=0.051)
            assert "**Ran on:** sweep " in trial["note"]["body"] and "torch " in trial["note"]["body"]
        assert all(t["intermediate_values"] == [] for t in crashed)  # never trained: no curve
        assert "optuna-dashboard lists them on the trial's page" in detail["note"]["body"]

        trial = finished[0]
        pngs = [a for a in trial["artifacts"] if a["mimetype"] == "image/png"]
        assert {a["filename"] for a in pngs} >= {"scatter.png", "curves.png"}
        status, kind, data = get(f"{base}/artifacts/{study_id}/{trial['trial_id']}/{pngs[0]['artifact_id']}")
        assert status == 200 and kind == "image/png" and data.startswith(b"\x89PNG\r\n\x1a\n")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    rest = process.stdout.read()
    assert code == 0, (rest, process.stderr.read())
    assert "dashboard stopped" in rest


def test_dashboard_server_in_a_thread_answers_on_a_free_port(review_study):
    from sweep.review import dashboard_server, dashboard_url
    from sweep.store import open_store

    server = dashboard_server(open_store(review_study.root), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = dashboard_url(server)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/dashboard", url)
        assert get(url.replace("/dashboard", "/api/studies"))[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    # a taken port is an error naming the address; the CLI adds which flag picks another
    from sweep.errors import AddressInUseError

    busy = dashboard_server(open_store(review_study.root), port=0)
    try:
        taken = busy.server_address[1]
        with pytest.raises(AddressInUseError, match=f"cannot listen on 127.0.0.1:{taken}"):
            dashboard_server(open_store(review_study.root), port=taken)
        proc = run_sweep("dashboard", "--port", str(taken), "--root", str(review_study.root), timeout=60)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert f"127.0.0.1:{taken}" in proc.stderr and "pick another port with --port" in proc.stderr
    finally:
        busy.server_close()


# a server whose only page sends Ctrl-C to its own process while it answers, then goes on writing
CTRL_C_MID_RESPONSE = """
import os, signal, sys, threading, urllib.request
from wsgiref.simple_server import make_server
from sweep import review

def app(environ, start_response):
    os.kill(os.getpid(), signal.SIGINT)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"x" * 65536 for _ in range(16)]

server = make_server("127.0.0.1", 0, app)
url = f"http://127.0.0.1:{server.server_port}/"
threading.Thread(target=lambda: urllib.request.urlopen(url, timeout=10).read(), daemon=True).start()
try:
    review.serve(server)
except KeyboardInterrupt:
    print("stopped")
"""


def test_ctrl_c_while_a_response_is_written_stops_the_dashboard():
    # served from the main thread, wsgiref's error handler caught that KeyboardInterrupt (it catches
    # everything) and the server went on: one Ctrl-C did not stop `sweep dashboard`
    proc = subprocess.run([sys.executable, "-c", CTRL_C_MID_RESPONSE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "stopped", proc.stderr
