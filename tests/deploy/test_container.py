"""The image's command and health check, run as processes on this machine with the
image's environment: what a container does, without a Docker engine."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from shared.settings import PROJECT_DIR
from shared.tooling.cluster import free_port
from shared.tooling.probe import probe
from tests.deploy.dockerfile import Stage, stages

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def image() -> Stage:
    return stages(PROJECT_DIR / "Dockerfile")[-1]


def container_env(image: Stage, database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTGAIN_", "SUPABASE_"))}
    env.update(image.env())
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        CONNECTGAIN_PROJECT_DIR=str(PROJECT_DIR),  # the image's /app
        CONNECTGAIN_API_PORT=str(port),
        CONNECTGAIN_FUNCTION="health",
        SUPABASE_DB_URL=database_url,
        SUPABASE_URL="https://project.supabase.test",
        SUPABASE_SERVICE_ROLE_KEY="a-project-service-key",
        CONNECTGAIN_CORS_ORIGINS="https://app.example.com",
    )
    return env


def health_check(image: Stage, env: dict[str, str], cwd: str) -> int:
    command = image.exec_form("HEALTHCHECK")
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, timeout=30).returncode


@pytest.fixture
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="cg-container-") as path:
        yield path  # no .env of the project is read there


def test_the_image_command_serves_and_its_health_check_sees_it(
    image: Stage, database_url: str, workdir: str
):
    port = free_port()
    env = container_env(image, database_url, port)
    assert health_check(image, env, workdir) == 1, "nothing is serving yet"

    server = subprocess.Popen(
        image.exec_form("CMD"),
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while health_check(image, env, workdir) != 0:
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.3)
        healthy, seen = probe(f"http://127.0.0.1:{port}/functions/v1/health")
        assert healthy, seen
        gone, _ = probe(f"http://127.0.0.1:{port}/functions/v1/members")
        assert not gone, "one function (health) is served, not the others"
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    # uvicorn finishes its requests and its lifespan, then re-raises SIGTERM (exit 143 in Docker).
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "/functions/v1/health" in output
    assert "/functions/v1/send-message" not in output
    assert "Application shutdown complete" in output


def test_the_health_check_fails_when_the_database_is_down(
    image: Stage, database_url: str, workdir: str
):
    port = free_port()
    dead = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres"
    env = container_env(image, dead, port)
    server = subprocess.run(
        image.exec_form("CMD"), env=env, cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert server.returncode != 0, "a function that cannot reach its database does not start"
    assert health_check(image, env, workdir) == 1


class Canned(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {
        "/ok": (200, b'{"status": "ok", "database": "ok"}'),
        "/degraded": (503, b'{"status": "degraded", "database": "down"}'),
        "/odd": (200, b'{"status": "starting"}'),
        "/html": (200, b"<html>a proxy's page</html>"),
    }

    def do_GET(self) -> None:
        status, body = self.answers[self.path]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_probe_is_healthy_only_on_200_and_status_ok():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert probe(f"{base}/ok") == (True, 'HTTP 200 {"status": "ok", "database": "ok"}')
        assert probe(f"{base}/degraded") == (False, "HTTP 503")
        assert probe(f"{base}/odd")[0] is False
        assert probe(f"{base}/html")[0] is False
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
