from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import get_settings
from shared.tooling import cli, cluster
from shared.tooling.cluster import Cluster, ClusterError, free_port


@pytest.fixture
def no_postgres(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CONNECTGAIN_PG_BINDIR", raising=False)
    monkeypatch.setattr(cluster, "SERVER_DIRS", str(tmp_path / "nothing" / "*" / "bin"))


def test_missing_server_binaries_give_the_install_command(no_postgres: None):
    with pytest.raises(ClusterError) as raised:
        cluster.find_binaries()
    assert cluster.INSTALL_HINT in str(raised.value)


def test_db_start_without_binaries_prints_the_hint_not_a_traceback(
    no_postgres: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("CONNECTGAIN_DATA_DIR", str(tmp_path / "db"))
    get_settings.cache_clear()
    try:
        assert cli.main(["db", "start"]) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "sudo apt-get install -y postgresql" in err
    assert "Traceback" not in err


@pytest.fixture
def scratch_cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="cg-cluster-"))
    os.chmod(root, 0o755)
    c = Cluster(data_dir=root / "db", port=free_port(), durable=False)
    try:
        yield c
    finally:
        c.destroy()
        root.rmdir()


def test_start_stop_and_status_are_safe_to_repeat(scratch_cluster: Cluster):
    c = scratch_cluster
    assert "Not initialised" in c.status()
    first = c.start()
    assert any("Initialised" in note for note in first)
    assert any("Already running" in note for note in c.start())
    assert c.status().startswith("Running")
    assert c.stop() == "Stopped"
    assert c.stop() == "Not running"
    assert c.status() == "Stopped"


def test_a_stale_pid_file_is_cleared_with_a_message(scratch_cluster: Cluster):
    c = scratch_cluster
    c.start()
    c.stop()
    # a pid that is certainly not a postgres server: this test process
    c.pid_file.write_text(f"{os.getpid()}\n{c.data_dir}\n")
    notes = c.start()
    assert any("stale pid file" in note for note in notes)
    assert c.running()


def test_a_taken_port_gets_a_clear_message(scratch_cluster: Cluster):
    c = scratch_cluster
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", c.port))
        squatter.listen()
        with pytest.raises(ClusterError, match=f"Port {c.port} .* already in use"):
            c.start()
