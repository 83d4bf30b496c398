"""The shipped broker configuration (deploy/mosquitto) in a real Mosquitto: credentials, ACLs,
client-id takeover, TLS, and MQTT 5 shared subscriptions across two collectors."""
import os
import re
import subprocess

import orjson
import pytest

from dcmon.collector.brokers import MosquittoProcess, free_port, run_as_lines
from dcmon.readings import now_ms
from dcmon.store import open_store

from conftest import (REPO, CollectorProc, count_unique, needs_mosquitto, needs_mosquitto_pub, paho_publisher,
                      publish_all, stop_client, wait_for)

pytestmark = [pytest.mark.integration, needs_mosquitto]
DEPLOY = REPO / "deploy" / "mosquitto"
USERS = {"cd-east-01": "east-secret-1", "cd-edge-01": "edge-secret-2", "collector-1": "col-secret-1",
         "collector-2": "col-secret-2"}


def _certs(d):
    d.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True, timeout=60)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=dcmon test CA")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return d


@pytest.fixture
def secure_broker(tmp_path):
    """Mosquitto with deploy/mosquitto/mosquitto.conf and acl; only '# test:' lines are replaced."""
    if subprocess.run(["which", "mosquitto_passwd"], capture_output=True).returncode:
        pytest.skip("mosquitto_passwd is not installed")
    work = tmp_path / "secure"
    certs = _certs(work / "certs")
    passwd = work / "passwd"
    for i, (u, p) in enumerate(USERS.items()):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), u, p], check=True)
    os.chmod(passwd, 0o600)
    ports = [free_port(), free_port()]
    paths = {"cafile": certs / "ca.crt", "certfile": certs / "server.crt", "keyfile": certs / "server.key",
             "password_file": passwd, "acl_file": DEPLOY / "acl", "persistence_location": f"{work}/"}
    out = []
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        if "# test: port" in line and not line.startswith("#"):
            out.append(f"listener {ports.pop(0)} 127.0.0.1")
        elif "# test: path" in line and not line.startswith("#"):
            key = line.split()[0]
            out.append(f"{key} {paths[key]}")
        elif line.startswith("log_dest"):
            out.append("log_dest stderr")
        else:
            out.append(line)
    assert not ports, "the shipped config has a plain and a TLS listener"
    text = "\n".join(out + run_as_lines()) + "\n"
    plain, tls = [int(x) for x in re.findall(r"^listener (\d+) 127\.0\.0\.1$", text, re.M)]
    b = MosquittoProcess(work, plain, config_text=text).start()
    b.tls_port, b.certs = tls, certs
    yield b
    b.stop()


def _reading(fac, meter, i=0, t=None):
    return (f"dcmon/v1/{fac}/meter/{meter}",
            orjson.dumps({"ts": (t or now_ms() - 600_000) + i * 1000, "power_kw": 10.0 + i}))


@needs_mosquitto_pub
def test_facility_credentials_cannot_publish_into_another_facility(secure_broker, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, secure_broker.url, "--username", "collector-1", client_id="collector-1",
                        env={"DCMON_MQTT_PASSWORD": USERS["collector-1"]}).start()
    # Forbidden: facility A's credentials publishing into facility B's topic. Mosquitto 2.0.11 drops the
    # message and closes the connection; mosquitto_pub returns once the broker has handled it.
    topic, payload = _reading("cd-edge-01", "grid-a", 0)
    denied = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(secure_broker.port), "-q", "1",
                             "-u", "cd-east-01", "-P", USERS["cd-east-01"], "-t", topic, "-m", payload.decode()],
                            capture_output=True, timeout=30)
    east = paho_publisher(secure_broker.port, client_id="whatever", username="cd-east-01",
                          password=USERS["cd-east-01"])
    publish_all(east, [_reading("cd-east-01", "grid-a", 1)])        # allowed, published after the denied one
    wait_for(lambda: count_unique(data, "cd-east-01") == 1, what="east reading")
    assert count_unique(data, "cd-edge-01") == 0, denied
    stop_client(east)
    # mosquitto_pub with the right credentials for its own facility works; wrong password and anonymous fail.
    base = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(secure_broker.port), "-q", "1"]
    topic, payload = _reading("cd-edge-01", "grid-a", 2)
    ok = subprocess.run([*base, "-u", "cd-edge-01", "-P", USERS["cd-edge-01"], "-t", topic, "-m", payload.decode()],
                        capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    wait_for(lambda: count_unique(data, "cd-edge-01") == 1, what="edge reading")
    for creds in (["-u", "cd-edge-01", "-P", "wrong"], []):
        bad = subprocess.run([*base, *creds, "-t", topic, "-m", payload.decode()], capture_output=True, timeout=30)
        assert bad.returncode != 0
    # A facility login cannot take over the collector's session by reusing its client id.
    thief = paho_publisher(secure_broker.port, client_id="collector-1", username="cd-edge-01",
                           password=USERS["cd-edge-01"])
    publish_all(thief, [_reading("cd-edge-01", "grid-a", 3)])
    wait_for(lambda: count_unique(data, "cd-edge-01") == 2, what="edge reading 2")
    stop_client(thief)
    assert col.text().count("connected to") == 1 and "disconnected" not in col.text()
    assert col.stop() == 0
    assert USERS["collector-1"] not in col.text(), "the password is never logged"


def test_collector_over_tls(secure_broker, tmp_path):
    data = tmp_path / "data"
    col = CollectorProc(data, f"mqtts://127.0.0.1:{secure_broker.tls_port}", "--username", "collector-1",
                        "--ca-file", str(secure_broker.certs / "ca.crt"), client_id="collector-1",
                        env={"DCMON_MQTT_PASSWORD": USERS["collector-1"]}).start()
    east = paho_publisher(secure_broker.port, username="cd-east-01", password=USERS["cd-east-01"])
    publish_all(east, [_reading("cd-east-01", "ups-1", i) for i in range(10)])
    stop_client(east)
    wait_for(lambda: count_unique(data, "cd-east-01") == 10, what="10 readings over TLS")
    assert col.stop() == 0


def test_two_collectors_share_the_load_and_store_every_reading_once(secure_broker, tmp_path):
    """MQTT 5 shared subscription $share/dcmon/…: each message goes to one collector of the group."""
    data = tmp_path / "data"
    cols = [CollectorProc(data, secure_broker.url, "--username", name, "--share-group", "dcmon",
                          client_id=name, env={"DCMON_MQTT_PASSWORD": USERS[name]}).start()
            for name in ("collector-1", "collector-2")]
    n = 3000
    east = paho_publisher(secure_broker.port, username="cd-east-01", password=USERS["cd-east-01"])
    t0 = now_ms() - 86_400_000
    publish_all(east, [_reading("cd-east-01", "grid-a", i, t=t0) for i in range(n)])
    stop_client(east)
    wait_for(lambda: count_unique(data, "cd-east-01") == n, timeout=60, what="all shared readings")

    def both_reported():
        docs = [open_store(data).get_status(f"collector-{c}") for c in ("collector-1", "collector-2")]
        return docs if all(d and d["readings"] > 0 for d in docs) and sum(d["readings"] for d in docs) >= n else None
    docs = wait_for(both_reported, what="both collectors' health")
    for c in cols:
        assert c.stop() == 0
    # Every reading was delivered to exactly one of the two collectors: the sum is n, not more.
    assert sum(d["readings"] for d in docs) == n
    assert sum(d["duplicates"] for d in docs) == 0
    assert all(d["readings"] > n // 10 for d in docs), [d["readings"] for d in docs]
