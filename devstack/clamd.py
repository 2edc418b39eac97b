"""A private clamd loaded with only the project's test signatures (no freshclam, no network).

It listens on a free TCP port on 127.0.0.1 and on a socket in its folder; stop() and
start() (or restart()) keep both, so outage tests can take it down and bring it back.
ClamAV appends ``.UNOFFICIAL`` to the names of signatures from unsigned databases, hence the
reported names below.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from devstack.process import (
    ServiceProcess,
    as_user,
    free_port,
    give_to,
    unprivileged_user,
)
from portcullis.clients.clamd import ClamdClient

SIGNATURES_DIR = Path(__file__).with_name("signatures")

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MARKER = b"PORTCULLIS-TEST-MALWARE-MARKER-7f3a9c"
EICAR_SIGNATURE = "Portcullis.Test.EICAR.UNOFFICIAL"
MARKER_SIGNATURE = "Portcullis.Test.Marker.UNOFFICIAL"

STREAM_MAX_BYTES = 64 * 1024 * 1024  # comfortably above UPLOAD_MAX_BYTES' 25 MiB default
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the NUL


def _clamd_binary() -> str:
    found = shutil.which("clamd") or next(
        (p for p in ("/usr/sbin/clamd", "/usr/local/sbin/clamd") if Path(p).exists()), None)
    if found is None:
        raise RuntimeError("clamd not found: install clamav-daemon")
    return found


class ClamdServer:
    def __init__(self, base_dir: Path, port: int | None = None, *,
                 stream_max_bytes: int = STREAM_MAX_BYTES) -> None:
        self.base_dir = base_dir
        self.port = port or free_port()
        self.socket_path = base_dir / "clamd.sock"
        self.db_dir = base_dir / "db"
        self.conf_path = base_dir / "clamd.conf"
        self.stream_max_bytes = stream_max_bytes
        self.user = unprivileged_user()
        self.start_seconds: float | None = None
        if len(str(self.socket_path).encode()) > _SUN_PATH_MAX:
            raise ValueError(f"socket path too long for AF_UNIX: {self.socket_path}")
        self.process = ServiceProcess(
            "clamd",
            as_user([_clamd_binary(), "--foreground", f"--config-file={self.conf_path}"],
                    self.user),
            base_dir / "clamd.out",
        )

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    def env(self) -> dict[str, str]:
        return {"CLAMD_URL": self.tcp_url}

    def _config(self) -> str:
        mib = -(-self.stream_max_bytes // (1024 * 1024))
        settings = {
            "Foreground": "yes",
            "TCPSocket": str(self.port),
            "TCPAddr": "127.0.0.1",
            "LocalSocket": str(self.socket_path),
            "LocalSocketMode": "660",
            "FixStaleSocket": "yes",
            "DatabaseDirectory": str(self.db_dir),
            "TemporaryDirectory": str(self.base_dir / "tmp"),
            "PidFile": str(self.base_dir / "clamd.pid"),
            "LogFile": str(self.base_dir / "clamd.log"),
            "LogTime": "yes",
            "LogClean": "no",
            "OfficialDatabaseOnly": "no",
            "SelfCheck": "0",  # the test database never changes under it
            "ConcurrentDatabaseReload": "no",
            "StreamMaxLength": f"{mib}M",
            "MaxFileSize": f"{mib}M",
            "MaxScanSize": f"{mib * 4}M",
            "MaxThreads": "8",
            "ReadTimeout": "30",
            "CommandReadTimeout": "10",
            "IdleTimeout": "30",
        }
        return "".join(f"{key} {value}\n" for key, value in settings.items())

    def _prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "tmp").mkdir(exist_ok=True)
        shutil.rmtree(self.db_dir, ignore_errors=True)
        shutil.copytree(SIGNATURES_DIR, self.db_dir)
        self.conf_path.write_text(self._config())
        give_to(self.base_dir, self.user)

    def _ready(self) -> bool:
        return all(ClamdClient(url, timeout=1.0).ping() for url in (self.tcp_url, self.unix_url))

    def start(self) -> ClamdServer:
        began = time.monotonic()
        self._prepare()
        self.process.start()
        try:
            self.process.wait_ready(self._ready, timeout=60)
        except BaseException:
            self.process.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """SIGTERM clamd itself: runuser, on a signal, waits 2 s before killing its child."""
        self._terminate_clamd()
        self.process.stop()

    def _terminate_clamd(self) -> None:
        proc = self.process.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            pid = int((self.base_dir / "clamd.pid").read_text().strip())
            if os.getpgid(pid) != proc.pid:  # not ours (a stale file, a reused pid)
                return
            os.kill(pid, signal.SIGTERM)
            proc.wait(10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return  # process.stop() signals the whole group anyway

    def restart(self) -> ClamdServer:
        """Stop and start again on the same port and socket path."""
        self.stop()
        return self.start()
