"""Local MQTT brokers for ``dcmon demo``, the tests and the benchmark (127.0.0.1 only).

:class:`MosquittoProcess` runs ``/usr/sbin/mosquitto`` with a generated or given config;
:class:`AmqttBroker` runs amqtt in-process (MQTT 3.1.1 only; a demo broker, not production).
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger("dcmon.broker")

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for p in MOSQUITTO_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return shutil.which("mosquitto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def run_as_lines() -> list[str]:
    """Mosquitto started as root switches to the user ``mosquitto``, which cannot write our temporary
    persistence folder: keep the current user instead."""
    if os.geteuid() == 0:
        import pwd
        return [f"user {pwd.getpwuid(os.geteuid()).pw_name}"]
    return []


def plain_config(port: int, persistence_dir: Path | None = None) -> str:
    """An anonymous loopback listener with the shipped queue settings (tests, demo, bench)."""
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "max_queued_messages 0",
             "max_inflight_messages 1000", "message_size_limit 1048576", "log_dest stderr",
             "log_type error", "log_type warning"]
    lines += run_as_lines()
    if persistence_dir is not None:
        lines += ["persistence true", f"persistence_location {persistence_dir}/", "autosave_interval 1",
                  "autosave_on_changes false"]
    return "\n".join(lines) + "\n"


class MosquittoProcess:
    """A Mosquitto child process; ``config_text`` must bind 127.0.0.1 only."""

    def __init__(self, workdir: Path, port: int, config_text: str | None = None, persistence: bool = True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text(config_text or plain_config(port, self.workdir if persistence else None))
        self.log_path = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0):
        exe = find_mosquitto()
        if exe is None:
            raise RuntimeError("mosquitto is not installed")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir)
        if not wait_port(self.port, timeout):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port}: {self.log_path.read_text()[-2000:]}")
        return self

    def stop(self, sig=None, timeout: float = 10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._log.close()

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self._log.close()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class AmqttBroker:
    """amqtt in a thread with its own event loop, bound to 127.0.0.1 (its default binds 0.0.0.0)."""

    def __init__(self, port: int):
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0):
        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def main():
                from amqtt.broker import Broker
                config = {
                    "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                    "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
                }
                self._broker = Broker(config)
                await self._broker.start()
            try:
                self._loop.run_until_complete(main())
            except BaseException as e:  # reported to start()
                self._error = e
                self._ready.set()
                return
            self._ready.set()
            self._loop.run_forever()
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._thread = threading.Thread(target=run, name="amqtt", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise RuntimeError(f"amqtt broker failed to start: {self._error}")
        if not wait_port(self.port, timeout):
            raise RuntimeError(f"amqtt did not listen on 127.0.0.1:{self.port}")
        return self

    def stop(self, timeout: float = 10.0):
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(timeout)
        except Exception as e:
            log.warning("amqtt shutdown: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"
