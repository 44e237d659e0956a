"""The contract of `examples/service.rs`, checked from outside: a real process on a free
loopback port, a real HTTP client (urllib), a real SIGTERM.

    python3 tests/contracts/service_example.py target/debug/examples/service

- POST /items with `"hello"` (application/json) answers 200 with ["hello","olleh"];
- a body that is not JSON answers 400 with a message;
- GET /healthz answers 200, GET /metrics lists per-node counters labelled with `node`;
- SIGTERM makes it exit 0 after printing the run report, whose accounting balances.
"""

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base, body, content_type="application/json"):
    request = urllib.request.Request(
        base + "/items", data=body, headers={"content-type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def main():
    exe = sys.argv[1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [exe, "--addr", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(400):
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                    assert response.status == 200, response.status
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        else:
            raise SystemExit("the service never answered /healthz")

        status, body = post(base, b'"hello"')
        assert (status, body) == (200, '["hello","olleh"]'), (status, body)

        status, body = post(base, b"hello")
        assert status == 400 and "not a valid item" in body, (status, body)

        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            metrics = response.read().decode()
        for node in ("inp", "rev", "out"):
            assert f'node="{node}"' in metrics, f"no counters for {node}:\n{metrics}"

        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, (server.returncode, err)
    assert "every item accounted for" in out, out
    assert "1 source items, 1 delivered" in out, out
    print("service example: contract holds")


if __name__ == "__main__":
    main()
