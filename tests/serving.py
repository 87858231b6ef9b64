"""`authz-service serve` (gunicorn) in a child process on a free port, for tests that need real workers,
real sockets and real parallelism; plus a tiny JSON HTTP client that is safe to use from many threads.

    with running_server({"AUTHZ_DATABASE_URL": url}, workers=2) as base_url:
        status, body = call(base_url, "GET", "/readyz")
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCRIPT = Path(sys.executable).with_name("authz-service")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(base_url: str, method: str, path: str, body: Any = None, key: str | None = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    """One request on a connection of its own: (status, parsed JSON body or None)."""
    status, _, parsed = exchange(base_url, method, path, body, key, timeout=timeout)
    return status, parsed


def exchange(base_url: str, method: str, path: str, body: Any = None, key: str | None = None, *,
             headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, dict[str, str], Any]:
    """``call`` with request headers, answering (status, headers with lower-case names, parsed body)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    sent = {"Connection": "close", **(headers or {})}
    if key:
        sent["Authorization"] = f"Bearer {key}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return response.status, found, parsed


@contextlib.contextmanager
def running_server(env: dict[str, str], workers: int = 2, *, threads: int = 4,
                   ready_within: float = 60.0) -> Iterator[str]:
    """Serve with ``env`` laid over this process's environment (AUTHZ_DATABASE_URL at least; the schema and
    catalog must exist: run ``init_db`` first); yields the base URL once ``/readyz`` answers 200. At the
    end the whole process group (gunicorn's master and workers) is killed."""
    if not SCRIPT.exists():
        raise RuntimeError(f"{SCRIPT} not found: install the service in this environment")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="authz-served-") as folder:
        metrics = Path(folder) / "metrics"
        metrics.mkdir()
        log_path = Path(folder) / "server.log"
        full_env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), "AUTHZ_ACCESS_LOG": "false", **env}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                 "--threads", str(threads)],
                env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_within
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited with {process.returncode}:\n{_tail(log_path)}")
                with contextlib.suppress(OSError):
                    if call(url, "GET", "/readyz", timeout=2)[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server was not ready in {ready_within:g} s:\n{_tail(log_path)}")
                time.sleep(0.1)
            yield url
        finally:
            _stop(process)
            keep = os.environ.get("AUTHZ_TEST_SERVER_LOGS")  # a folder to keep each server's log in
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(log_path, Path(keep) / f"server-{port}.log")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the whole group (gunicorn's master and its workers) at once: a test server keeps nothing that
    needs a graceful shutdown, and a graceful one costs seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""
