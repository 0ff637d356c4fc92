"""An embedded PostgreSQL: the machine's server binaries, a data folder of our own, no Docker.

Used by `connectgain db …` (data in .connectgain/db, port 54322) and by the test
harness (a throwaway folder and a free port). As root, the server runs as an
unprivileged OS user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import LOCAL_DB_PASSWORD, LOCAL_DB_USER, local_database_url

MIN_VERSION = 15
SERVER_DIRS = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = "sudo apt-get install -y postgresql"
SUPERUSER = LOCAL_DB_USER
PASSWORD = LOCAL_DB_PASSWORD


class ClusterError(Exception):
    """A problem the person at the keyboard can fix; printed without a traceback."""


@dataclass(frozen=True)
class Binaries:
    bindir: Path
    version: int

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    def has_extension(self, name: str) -> bool:
        """Whether the server can `create extension <name>` (its control file is there)."""
        out = subprocess.run([self.tool("pg_config"), "--sharedir"], capture_output=True, text=True)
        return (Path(out.stdout.strip()) / "extension" / f"{name}.control").is_file()


def _version_of(bindir: Path) -> int | None:
    postgres = bindir / "postgres"
    if not (postgres.is_file() and os.access(postgres, os.X_OK)):
        return None
    if not all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl")):
        return None
    out = subprocess.run([str(postgres), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def candidate_bindirs() -> list[Path]:
    found: list[Path] = []
    if explicit := os.environ.get("CONNECTGAIN_PG_BINDIR"):
        found.append(Path(explicit))
    if on_path := shutil.which("postgres"):
        found.append(Path(on_path).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout
        if out.strip():
            found.append(Path(out.strip()))
    found += [Path(p) for p in sorted(glob.glob(SERVER_DIRS), key=_dir_version, reverse=True)]
    return found


def _dir_version(path: str) -> int:
    match = re.search(r"/(\d+)/bin$", path)
    return int(match.group(1)) if match else 0


def find_binaries() -> Binaries:
    seen: list[str] = []
    for bindir in candidate_bindirs():
        version = _version_of(bindir)
        if version is None:
            continue
        if version >= MIN_VERSION:
            return Binaries(bindir=bindir, version=version)
        seen.append(f"{bindir} (version {version})")
    older = f" Found only older servers: {', '.join(seen)}." if seen else ""
    raise ClusterError(
        f"No PostgreSQL server binaries (version {MIN_VERSION} or newer) on this machine."
        f"{older}\nInstall them with:\n\n    {INSTALL_HINT}\n"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class Cluster:
    data_dir: Path
    port: int
    # Throwaway clusters (tests) trade durability for speed.
    durable: bool = True
    # More `-c name=value` server settings (the test harness turns autovacuum off).
    options: tuple[str, ...] = ()
    binaries: Binaries | None = field(default=None, repr=False)

    @property
    def bin(self) -> Binaries:
        if self.binaries is None:
            self.binaries = find_binaries()
        return self.binaries

    def url(self, database: str = "postgres") -> str:
        # The same URL the settings default to, so one port moves every part.
        return local_database_url(self.port, database)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    # ---- running as an unprivileged user when we are root -------------------------------

    def _run_as(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise ClusterError("Running as root and no unprivileged 'postgres' user exists")

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._run_as()
        kwargs: dict[str, object] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        result: subprocess.CompletedProcess[str] = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=check,
            cwd=self.data_dir.parent,
            **kwargs,  # type: ignore[call-overload]
        )
        return result

    def _own(self, path: Path) -> None:
        user = self._run_as()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._own(self.data_dir)
        with tempfile.NamedTemporaryFile("w", dir=self.data_dir.parent, delete=False) as pw:
            pw.write(PASSWORD)
        pwfile = Path(pw.name)
        self._own(pwfile)
        try:
            result = self._run(
                [
                    self.bin.tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    *(() if self.durable else ("--no-sync",)),
                ],
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ClusterError(f"initdb failed:\n{result.stderr.strip()}")

    def running(self) -> bool:
        if not self.initialized:
            return False
        result = self._run([self.bin.tool("pg_ctl"), "status", "-D", str(self.data_dir)], False)
        return result.returncode == 0

    def _clear_stale_pid_file(self) -> str | None:
        if not self.pid_file.exists() or self.running():
            return None
        self.pid_file.unlink()
        return f"Removed a stale pid file ({self.pid_file}) left by a server that is gone."

    def _clear_reused_pid(self) -> str | None:
        """pg_ctl trusts a pid that was reused by another process; check it is postgres."""
        try:
            pid = int(self.pid_file.read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        if b"postgres" in cmdline:
            return None
        self.pid_file.unlink()
        return f"Removed a stale pid file: process {pid} is not a PostgreSQL server."

    def start(self) -> list[str]:
        """Start (initialising on first use); returns what it did, for the user."""
        notes: list[str] = []
        if not self.initialized:
            self.init()
            notes.append(f"Initialised a new database cluster in {self.data_dir}")
        if self.pid_file.exists():
            notes += filter(None, [self._clear_reused_pid()])
        if self.running():
            notes.append(f"Already running on port {self.port}")
            return notes
        notes += filter(None, [self._clear_stale_pid_file()])
        if port_in_use(self.port):
            raise ClusterError(
                f"Port {self.port} on 127.0.0.1 is already in use by another program.\n"
                "Stop it, or choose another port with CONNECTGAIN_DB_PORT."
            )
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.data_dir}",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {option}" for option in self.options]
        self.log_file.touch()
        self._own(self.log_file)
        result = self._run(
            [
                self.bin.tool("pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                " ".join(options),
            ],
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text(errors="replace").splitlines()[-15:]
            raise ClusterError("PostgreSQL did not start:\n" + "\n".join(tail))
        notes.append(f"PostgreSQL {self.bin.version} running on 127.0.0.1:{self.port}")
        return notes

    def stop(self) -> str:
        if not self.running():
            return "Not running"
        self._run([self.bin.tool("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)])
        return "Stopped"

    def status(self) -> str:
        if not self.initialized:
            return f"Not initialised ({self.data_dir} is empty); run: connectgain db start"
        if self.running():
            return f"Running on 127.0.0.1:{self.port}  {self.url()}"
        return "Stopped"

    def destroy(self) -> None:
        if self.running():
            self._run(
                [self.bin.tool("pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data_dir)],
                check=False,
            )
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)
