"""A private RabbitMQ node (Debian's ``rabbitmq-server``) on free ports, in its own folder.

Its own node name, AMQP port, distribution port and port mapper (``epmd``, started here in
the foreground so stopping the node leaves nothing behind), its own Mnesia directory and a
user of its own with a random password. stop() and start() keep the ports and the data, so a
restart is what a real one is: durable queues and persistent messages come back.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

from kombu import Connection

from devstack.process import ServiceProcess, free_port, port_open

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def available() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and _epmd() is not None


def _epmd() -> str | None:
    found = shutil.which("epmd")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))
    return str(candidates[-1]) if candidates else None


class RabbitMQServer:
    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = base_dir
        self.port = port or free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.user = "portcullis"
        self.password = secrets.token_urlsafe(18)
        self.node = f"portcullis-{self.port}@localhost"
        epmd = _epmd()
        if epmd is None or not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(base_dir),  # the Erlang cookie lives here
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(base_dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base_dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base_dir / "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(base_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base_dir / "log"),
            "RABBITMQ_LOGS": "-",
        }
        self.epmd = ServiceProcess(
            "epmd", [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            base_dir / "epmd.log", env=env)
        self.process = ServiceProcess("rabbitmq", [str(RABBITMQ_BIN / "rabbitmq-server")],
                                      base_dir / "rabbitmq.log", env=env)

    def _write_config(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "rabbitmq-env.conf").write_text("")
        (self.base_dir / "enabled_plugins").write_text("[].\n")
        (self.base_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"default_user = {self.user}\n"
            f"default_pass = {self.password}\n"
            "default_vhost = /\n"
            # Unacknowledged deliveries (acks_late, and a retry's countdown held by the
            # worker) may stay out longer than RabbitMQ's 30-minute default.
            "consumer_timeout = 7200000\n"
            "disk_free_limit.absolute = 50MB\n")

    def _accepts_amqp(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            with Connection(self.url(), connect_timeout=1) as conn:
                conn.ensure_connection(max_retries=1)
            return True
        except Exception:  # noqa: BLE001 - not ready yet
            return False

    def start(self) -> RabbitMQServer:
        self._write_config()
        if not self.epmd.running:
            self.epmd.start()
            self.epmd.wait_ready(lambda: port_open(self.epmd_port), timeout=15)
        self.process.start()
        self.process.wait_ready(self._accepts_amqp, timeout=90)
        return self

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def close(self) -> None:
        """Stop the node and its port mapper."""
        self.stop()
        self.epmd.stop()

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        return {"CELERY_BROKER_URL": self.url()}
