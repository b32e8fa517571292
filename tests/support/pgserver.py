"""A throwaway PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp dir.

Runs as the `postgres` user when we are root (initdb refuses root). Listens on 127.0.0.1
on a free port, trust auth, and is stopped and deleted by `stop()`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_pg_bin() -> Path | None:
    candidates = [os.environ.get("LAP_PG_BIN", "")] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, *, durable: bool = False) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries not found (initdb); install postgresql")
        self.bin = bin_dir
        self.durable = durable  # fsync on (benchmarks) or off (faster tests)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lap-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> "PgServer":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "lap", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._opts = opts
        self.start_again()
        return self

    def start_again(self) -> None:
        """Start the server (again, after `stop`) with the same options and port."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", self._opts, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://lap@127.0.0.1:{self.port}/{db}"

    def createdb(self, name: str) -> str:
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "lap", name],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    def restart(self) -> None:
        self.stop()
        self.start_again()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":  # manual use: python -m tests.support.pgserver
    srv = PgServer().start()
    print(srv.url(), flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        srv.destroy()
