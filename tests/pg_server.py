"""A real PostgreSQL server for the tests, started from the machine's binaries.

Debian puts the server in ``/usr/lib/postgresql/<major>/bin`` (the ``postgresql`` package);
the newest there is used, else ``postgres`` on ``PATH``. The server refuses to run as root, so
when the tests run as root it runs as ``nobody`` in a data directory handed to that user. It
listens on 127.0.0.1 on a free port and on a Unix socket in its temporary directory, trusts
local connections (a throw-away cluster), and runs with ``fsync`` off: a test's database
needs no durability against a power cut, and initdb plus start take well under a second.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["PASSWORD_ROLE", "PostgresServer", "find_bindir"]

#: The one role that must log in with a password (everyone else is trusted): for the tests of
#: what happens to a wrong one.
PASSWORD_ROLE = "kling_password_user"


def find_bindir() -> Path | None:
    """The directory of the newest PostgreSQL server binaries on this machine, or ``None``;
    ``KLING_PG_BINDIR`` names one instead (empty: none, to see the tests skip)."""
    chosen = os.environ.get("KLING_PG_BINDIR")
    if chosen is not None:
        return Path(chosen) if chosen and (Path(chosen) / "postgres").exists() else None

    def major(path: str) -> float:
        found = re.search(r"/postgresql/(\d+(?:\.\d+)?)/", path)
        return float(found[1]) if found else 0.0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=major)
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb", path=str(Path(on_path).parent)):
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """``with PostgresServer(bindir) as server:`` — ``server.dsn`` reaches database ``postgres``
    as the superuser ``postgres``; :meth:`dsn_for` reaches another database."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.base = Path(tempfile.mkdtemp(prefix="kling-pg-"))
        self.data = self.base / "data"
        self._process: subprocess.Popen[bytes] | None = None
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:  # postgres will not run as root: hand the cluster to nobody
            nobody = pwd.getpwnam("nobody")
            self._user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chown(self.base, nobody.pw_uid, nobody.pw_gid)

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = self.base / "initdb.log"
        with open(log, "wb") as out:
            done = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D", str(self.data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
                ],
                stdout=out, stderr=subprocess.STDOUT, env=self._env(), check=False,
                **self._user,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {log.read_text(errors='replace')[-2000:]}")
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.base),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "log_min_messages": "fatal",
        }
        self._args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            self._args += ["-c", f"{name}={value}"]
        self._log = open(self.base / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self._launch()

    def _launch(self) -> None:
        self._process = subprocess.Popen(
            self._args, stdout=self._log, stderr=subprocess.STDOUT, env=self._env(),
            start_new_session=True,  # a ^C to pytest is for pytest; stop() shuts it down
            **self._user,
        )  # fmt: skip
        self._wait_ready()

    def halt(self) -> None:
        """Shut the server down as a restart or a fail-over does (a "fast" shutdown: sessions
        ended, clients told 57P01), keeping its data for :meth:`resume`."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)

    def resume(self) -> None:
        """Start the halted server again, on the same port and data."""
        self._launch()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "HOME": str(self.base)})
        return env

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.server_log()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                # Accepting TCP is not yet accepting logins: ask pg_isready.
                ready = subprocess.run(
                    [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1",
                     "-p", str(self.port), "-U", "postgres"],
                    check=False, env=self._env(),
                )  # fmt: skip
                if ready.returncode == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"postgres did not start in {timeout}s: {self.server_log()[-2000:]}")

    def server_log(self) -> str:
        path = self.base / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def psql(self, sql: str) -> None:
        """Run ``sql`` as the superuser in database ``postgres`` (CREATE/DROP DATABASE...)."""
        done = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.dsn,
             "-c", sql],
            capture_output=True, check=False, env=self._env(),
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, no checkpoint wait
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
