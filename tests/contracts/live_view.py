"""The live view in a real browser: headless Chromium loads `GET /` of the running service
example while items flow, the service drains on SIGTERM, and the page's final DOM must show
every node of the graph (drawn and in the counts table) and the run's end with its counts.
A screenshot is kept in target/live-view.png.

    python3 tests/contracts/live_view.py target/debug/examples/service

Without a Chromium on this machine it says so and skips (exit 0), never silently.
"""

import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

NODES = ("inp", "rev", "out")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(base):
    for _ in range(400):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise SystemExit("the service never answered /healthz")


def feed(base, stop, sent):
    n = 0
    while not stop.is_set():
        request = urllib.request.Request(
            base + "/items",
            data=f'"w{n}"'.encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    sent.append(n)
        except (urllib.error.URLError, ConnectionError):
            return
        n += 1
        time.sleep(0.01)


def main():
    browser = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
        None,
    )
    if browser is None:
        print("SKIPPED: the live view's browser check needs Chromium, which is not installed here")
        return
    exe = sys.argv[1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [exe, "--addr", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stop, sent = threading.Event(), []
    try:
        wait_up(base)
        feeder = threading.Thread(target=feed, args=(base, stop, sent))
        feeder.start()
        time.sleep(0.5)
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        subprocess.run(
            flags + ["--timeout=2500", "--window-size=1000,520", "--screenshot=target/live-view.png", base + "/"],
            capture_output=True,
            timeout=120,
        )
        # The DOM once the run is over: the page hears the last frame, and closes its stream.
        def drain():
            time.sleep(2.5)
            stop.set()
            feeder.join()
            server.send_signal(signal.SIGTERM)

        threading.Thread(target=drain).start()
        dom = subprocess.run(
            flags + ["--virtual-time-budget=20000", "--dump-dom", base + "/"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        out, err = server.communicate(timeout=60)
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, (server.returncode, err)
    for node in NODES:
        drawn = re.search(rf'<g class="node [a-z]+( bottleneck)?" data-node="{node}"', dom)
        listed = re.search(rf'<tr data-node="{node}"', dom)
        assert drawn and listed, f"node {node} is not on the page:\n{dom}"
    status = re.search(r'<p id="status"[^>]*>([^<]*)<', dom)
    assert status, dom
    status = status.group(1)
    assert "run finished" in status and "every item accounted for" in status, status
    delivered = int(re.search(r"(\d+) delivered", status).group(1))
    assert delivered == len(sent) > 0, (delivered, len(sent), status)
    print(f"live view: every node drawn and listed, {delivered} delivered as the report says; screenshot in target/live-view.png")


if __name__ == "__main__":
    main()
