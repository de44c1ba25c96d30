"""Running part 4 for real (part4_production/README.md): several processes on one
port, stopping together; the health check; nginx in front, streaming both ways;
and the Docker Compose file, which cannot run here, read and checked.

Each test runs part 4 of its own: with the options it checks, to stop, behind nginx,
or on a database that does not answer; the one that only reads (the health check) is alone."""

import contextlib
import hashlib
import io
import os
import re
import signal
import socket
import time
import urllib.parse

import psutil
import pytest
import yaml
from motor.motor_tornado import MotorClient

from coursekit.clients import Client
from coursekit.images import image_bytes
from coursekit.nginx import Nginx, nginx_executable
from coursekit.processes import free_port
from coursekit.stages import ROOT
from coursekit.waiting import wait_until

RUNS_ON = ["part4_production"]

DEPLOY = ROOT / "deploy"
MiB = 1024 * 1024


# --- Talking to one process: a connection we know the owner of ---


def workers(program, count):
    """The `count` child processes of `program`, once they have all started."""
    parent = psutil.Process(program.process.pid)

    def started():
        children = parent.children()
        return children if len(children) >= count else None

    return wait_until(started, timeout=20)


def owner(connection, processes):
    """Which of `processes` accepted `connection`: the one holding its other end."""
    for process in processes:
        if any(c.raddr and tuple(c.raddr) == connection.address for c in process.net_connections("tcp")):
            return process
    return None


async def one_connection_each(connect, client, processes):
    """A kept-alive connection to the client's stage accepted by each of `processes`.
    The kernel hands a new connection to whichever process accepts first: open some
    until each has one."""
    connections, others = {}, []
    for _ in range(200):
        connection = await connect(client)
        _, _, body = await connection.request("GET", "/healthz", timeout=30)
        assert body == b"ok"  # answered: accepted by now
        process = owner(connection, processes)
        if process and process.pid not in connections:
            connections[process.pid] = connection
        else:
            others.append(connection)
        if len(connections) == len(processes):
            break
    for connection in others:
        connection.close()
    assert len(connections) == len(processes), "the processes did not all accept a connection"
    return list(connections.values())


async def test_a_file_uploaded_through_one_process_is_read_back_through_another(program, connect):
    photo = image_bytes(size=(300, 200), color="teal")
    running = program("--processes=2")
    client = Client(running.url)
    await client.visit()  # the XSRF cookie, which each connection sends
    first, second = await one_connection_each(connect, client, workers(running, 2))
    status, headers, body = await first.request("PUT", "/upload/teal.png", photo, ["Content-Type: image/png"],
                                                timeout=30)
    assert status == 201, body
    original_path = headers["location"]

    status, _, body = await second.request("GET", original_path, timeout=30)
    assert (status, body) == (200, photo)
    status, headers, _ = await second.request("GET", original_path.removesuffix("orig") + "thumb", timeout=30)
    assert (status, headers.get("content-type")) == (200, "image/png")
    assert f'href="{original_path}"' in (await second.request("GET", "/", timeout=30))[2].decode()
    first.close()
    second.close()
    assert "Traceback" not in running.output()


def signal_parent(signum):
    return lambda parent, children: parent.send_signal(signum)


def ctrl_c(parent, children):
    """What Ctrl+C in a terminal does: SIGINT to every process of the foreground group."""
    for process in [parent, *children]:
        process.send_signal(signal.SIGINT)


def stopped(process):
    """Whether `process` is gone, or a zombie: orphans that no one reaps linger so."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return process.status() == psutil.STATUS_ZOMBIE
    return True


@pytest.mark.parametrize("stop, status", [
    (ctrl_c, 0),
    (signal_parent(signal.SIGINT), 0),  # what `course.py run` passes on
    (signal_parent(signal.SIGTERM), 0),  # docker stop, systemctl stop, kill
    (signal_parent(signal.SIGKILL), -signal.SIGKILL),  # the parent dies: its children notice
], ids=["ctrl-c", "sigint", "sigterm", "sigkill"])
async def test_the_processes_stop_together(program, connect, stop, status):
    running = program("--processes=2")
    children = workers(running, 2)
    await one_connection_each(connect, running.url, children)  # both serving
    stop(psutil.Process(running.process.pid), children)
    assert running.process.wait(timeout=15) == status
    _, alive = psutil.wait_procs(children, timeout=15)
    assert all(map(stopped, alive)), alive
    output = running.output()
    assert "Traceback" not in output
    if status == 0:
        assert len(re.findall(r"child \d \(pid \d+\) exited normally", output)) == 2, output


def test_ctrl_c_while_starting_stops_quietly(program):
    unreachable = f"mongodb://127.0.0.1:{free_port()}"  # the check waits 3 s for it
    # Started, not listening: it will not listen before its database answers.
    starting = program("--processes=2", mongodb_uri=unreachable, ready=lambda: True)
    process = psutil.Process(starting.process.pid)
    # PyMongo's threads: the database check has begun.
    wait_until(lambda: process.num_threads() > 1, timeout=20, interval=0.01)
    starting.process.send_signal(signal.SIGINT)
    assert (starting.process.wait(timeout=15), starting.output()) == (0, "")


def test_the_debug_mode_works_with_one_process_only(program):
    status, output = program.run("--processes=2", "--debug", timeout=15)
    assert status != 0
    assert output.strip() == "error: --debug reloads the code when it changes: it works with one process only"


# --- The health check ---


async def test_the_health_check_says_ok_while_the_database_answers(client):
    response = await client.fetch("/healthz")
    assert (response.code, response.body, response.headers["Content-Type"]) == (200, b"ok", "text/plain")
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_health_check_answers_503_when_the_database_does_not(serve):
    nowhere = MotorClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=300)
    try:
        response = await (await serve(db=nowhere.test, visit=False)).fetch("/healthz")
    finally:
        nowhere.close()
    assert response.code == 503


# --- Behind nginx ---


def site(port, app_port):
    """deploy/nginx.conf, listening on 127.0.0.1:`port`, in front of the app on `app_port`."""
    site = (DEPLOY / "nginx.conf").read_text()
    here = {"listen 80;": f"listen 127.0.0.1:{port};", "server app:8000;": f"server 127.0.0.1:{app_port};"}
    for old, new in here.items():
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    return site


class Stream(io.RawIOBase):
    """`size` random bytes, made as they are read, and their SHA-256."""

    def __init__(self, size):
        self.left, self.sha256 = size, hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, buffer):
        piece = os.urandom(min(len(buffer), self.left))
        self.left -= len(piece)
        self.sha256.update(piece)
        buffer[:len(piece)] = piece
        return len(piece)

    async def send(self, write):
        """Tornado's body_producer: the bytes written a MiB at a time, as they are made."""
        while piece := self.read(MiB):
            await write(piece)


async def download_sha256(client, path, pause=0):
    """The SHA-256 and size of what `path` sends, and a `pause` (seconds) after the
    first MiB: a slow reader, for a while."""
    sha256, size = hashlib.sha256(), 0

    def received(piece):
        nonlocal size
        sha256.update(piece)
        if size < MiB <= size + len(piece):
            time.sleep(pause)  # holds the event loop: nothing more is read meanwhile
        size += len(piece)

    response = await client.fetch(path, streaming_callback=received)
    assert response.code == 200
    return sha256.hexdigest(), size


@pytest.mark.skipif(nginx_executable() is None, reason="nginx is not installed (Debian: apt-get install nginx)")
async def test_nginx_streams_a_large_file_both_ways_and_passes_on_the_clients_address(program, tmp_path):
    # The client calls from 127.0.0.2, so that the app can tell it from nginx (127.0.0.1).
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("no 127.0.0.2 here to call nginx from")
    size = 64 * MiB
    running = program("--processes=2", "--xheaders")
    port = free_port()
    with Nginx(site(port, running.port), port, tmp_path) as proxy:
        client = Client(proxy.url, request_timeout=120, network_interface="127.0.0.2")
        assert (await client.visit()).code == 200
        # A browser on plain HTTP sends no Sec-Fetch-Site, only its Origin, which
        # cross_origin_protection compares with the Host that nginx passes on.
        posted = await client.upload(image_bytes(), "photo.png", headers={"Origin": f"http://127.0.0.1:{port}"})
        assert posted.code == 302, posted.body

        body = Stream(size)  # with a Content-Length, as `curl -T` sends it
        stored = await client.fetch("/upload/big.bin", "PUT", body_producer=body.send,
                                    headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        assert stored.code == 201, stored.body
        big = stored.headers["Location"]
        # Paused, a buffering nginx would read the rest from the app into a temporary file.
        assert await download_sha256(client, big, pause=1) == (body.sha256.hexdigest(), size)

        chunked = Stream(4 * MiB)  # no Content-Length: chunked, as a browser's stream would be
        stored = await client.fetch("/upload/chunked.bin", "PUT", body_producer=chunked.send)
        assert stored.code == 201, stored.body
        small = stored.headers["Location"]
        assert await download_sha256(client, small) == (chunked.sha256.hexdigest(), 4 * MiB)
        output = running.output()

    # The app logged the client's address, which nginx passed on, not nginx's own.
    for line in ("201 PUT /upload/big.bin (127.0.0.2)", f"200 GET {big} (127.0.0.2)",
                 "201 PUT /upload/chunked.bin (127.0.0.2)"):
        assert line in output, output
    # nginx says so when it holds a body back in a temporary file, up or down: it never did.
    assert "temporary file" not in proxy.error_log.read_text()


# --- Docker Compose: read, since it cannot run here ---


def compose():
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_a_replica_set_of_three_the_app_and_nginx():
    services = compose()["services"]
    assert set(services) == {"mongo1", "mongo2", "mongo3", "mongo-init", "app", "nginx"}
    for name in ("mongo1", "mongo2", "mongo3"):
        assert services[name]["image"] == "mongo:8"
        assert services[name]["command"] == ["mongod", "--replSet", "rs0", "--bind_ip_all"]
        assert services[name]["volumes"] == [f"{name}:/data/db"]
    init = services["mongo-init"]
    script = init["command"][-1]
    assert init["image"] == "mongo:8" and "rs.initiate" in script and '_id: "rs0"' in script
    assert re.findall(r'host: "(mongo\d:27017)"', script) == ["mongo1:27017", "mongo2:27017", "mongo3:27017"]
    assert set(init["depends_on"]) == {"mongo1", "mongo2", "mongo3"}


def test_compose_points_the_app_at_the_replica_set_with_one_process_per_core(stage_app):
    app = compose()["services"]["app"]
    # Part 4 unless STAGE names another (part 5 adds its WebSockets, which nginx.conf carries).
    assert app["command"] == ["python", "${STAGE:-part4_production}/app.py", "--processes=0", "--xheaders"]
    assert app["build"]["args"] == {"STAGE": "${STAGE:-part4_production}"}
    assert "processes" in stage_app.options  # a real option of the stage
    uri = urllib.parse.urlsplit(app["environment"]["MONGODB_URI"])
    assert uri.netloc.split(",") == ["mongo1:27017", "mongo2:27017", "mongo3:27017"]
    assert urllib.parse.parse_qs(uri.query) == {"replicaSet": ["rs0"]}
    assert app["depends_on"]["mongo-init"] == {"condition": "service_completed_successfully"}
    # Docker waits 10 s by default before SIGKILL: longer than the graceful stop may take.
    options = stage_app.options
    assert int(app["stop_grace_period"].removesuffix("s")) > options.shutdown_timeout + options.db_timeout
    assert "/healthz" in " ".join(app["healthcheck"]["test"])
    # Built from the repository's root, by deploy/Dockerfile, with the pinned packages.
    assert (DEPLOY / app["build"]["context"]).resolve() == ROOT
    dockerfile = (ROOT / app["build"]["dockerfile"]).read_text()
    assert "COPY requirements.txt ." in dockerfile and "pip install --no-cache-dir -r" in dockerfile
    assert "ARG STAGE=part4_production" in dockerfile and "COPY ${STAGE}/ ${STAGE}/" in dockerfile
    # What Docker may read of the repository: only what the Dockerfile copies.
    allowed = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert {"*", "!requirements.txt", "!part4_production/", "!part5_live/"} <= set(allowed)


def test_compose_puts_nginx_in_front_with_the_repositorys_configuration():
    services = compose()["services"]
    nginx_service = services["nginx"]
    source, target, mode = nginx_service["volumes"][0].split(":")
    assert (DEPLOY / source).resolve() == DEPLOY / "nginx.conf"
    assert (target, mode) == ("/etc/nginx/conf.d/default.conf", "ro")
    assert nginx_service["ports"] == ["8080:80"]
    assert nginx_service["depends_on"]["app"] == {"condition": "service_healthy"}
    site = (DEPLOY / "nginx.conf").read_text()
    assert "listen 80;" in site
    assert f"server app:{services['app']['environment']['PORT']};" in site


def test_the_nginx_configuration_streams_and_passes_on_the_client(stage_app):
    site = (DEPLOY / "nginx.conf").read_text()
    lines = {line.strip() for line in site.splitlines() if not line.strip().startswith("#")}
    max_upload_size = stage_app.options.max_upload_size
    assert max_upload_size == 4 * 1024**3 and "client_max_body_size 4g;" in lines  # nginx's g is GiB
    for line in ("proxy_request_buffering off;", "proxy_buffering off;", "proxy_http_version 1.1;",
                 "proxy_set_header X-Real-IP $remote_addr;",
                 "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                 "proxy_set_header X-Forwarded-Proto $scheme;"):
        assert line in lines
