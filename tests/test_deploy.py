"""Running part 4 for real (part4_production/README.md): several processes on one
port, stopping together; the health check; nginx in front, streaming both ways;
and the Docker Compose file, which cannot run here, read and checked."""

import contextlib
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psutil
import pytest
import yaml
from motor.motor_tornado import MotorClient

from support import ROOT, Client, course, free_port, image_bytes, load_stage, multipart, served, stage_program

RUNS_ON = ["part4_production"]

STAGE = "part4_production"
DEPLOY = ROOT / "deploy"
MiB = 1024 * 1024


# --- Talking to one process: a connection we know the owner of ---


class Connection(http.client.HTTPConnection):
    """A kept-alive connection that keeps the `_xsrf` cookie, as a script would."""

    cookies = ""

    def ask(self, method, path, body=None, headers=None, **kwargs):
        headers = {"Cookie": self.cookies, **(headers or {})}
        if method not in ("GET", "HEAD") and "_xsrf=" in self.cookies:
            headers["X-XSRFToken"] = self.cookies.split("_xsrf=", 1)[1]
        self.request(method, path, body, headers, **kwargs)
        response = self.getresponse()
        response.body = response.read()
        if cookie := response.getheader("Set-Cookie"):
            self.cookies = cookie.split(";", 1)[0]
        return response


def workers(program, count):
    """The `count` child processes of `program`, once they have all started."""
    parent = psutil.Process(program.process.pid)
    deadline = time.monotonic() + 20
    while len(children := parent.children()) < count:
        assert time.monotonic() < deadline, program.output()
        time.sleep(0.05)
    return children


def owner(connection, processes):
    """Which of `processes` accepted `connection`: the one holding its other end."""
    client_end = connection.sock.getsockname()
    for process in processes:
        if any(c.raddr and tuple(c.raddr) == client_end for c in process.net_connections("tcp")):
            return process
    return None


def one_connection_each(port, processes):
    """A connection to `port` accepted by each of `processes`. The kernel hands a new
    connection to whichever process accepts first: open some until each has one."""
    connections, others = {}, []
    for _ in range(200):
        connection = Connection("127.0.0.1", port, timeout=30)
        assert connection.ask("GET", "/healthz").body == b"ok"  # answered: accepted by now
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


def test_a_file_uploaded_through_one_process_is_read_back_through_another(mongodb_uri, db_name):
    photo = image_bytes(size=(300, 200), color="teal")
    with stage_program(STAGE, mongodb_uri, db_name, args=["--processes=2"]) as program:
        port = int(program.url.rsplit(":", 1)[1])
        first, second = one_connection_each(port, workers(program, 2))
        first.ask("GET", "/")  # the XSRF cookie
        stored = first.ask("PUT", "/upload/teal.png", photo, {"Content-Type": "image/png"})
        assert stored.status == 201, stored.body
        upload_id = json.loads(stored.body)["id"]

        original = second.ask("GET", f"/uploads/{upload_id}/orig")
        assert (original.status, original.body) == (200, photo)
        thumbnail = second.ask("GET", f"/uploads/{upload_id}/thumb")
        assert (thumbnail.status, thumbnail.getheader("Content-Type")) == (200, "image/png")
        assert f'href="/uploads/{upload_id}/orig"' in second.ask("GET", "/").body.decode()
        first.close()
        second.close()
        assert "Traceback" not in program.output()


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
def test_the_processes_stop_together(mongodb_uri, db_name, stop, status):
    with stage_program(STAGE, mongodb_uri, db_name, args=["--processes=2"]) as program:
        children = workers(program, 2)
        one_connection_each(int(program.url.rsplit(":", 1)[1]), children)  # both serving
        stop(psutil.Process(program.process.pid), children)
        assert program.process.wait(timeout=15) == status
        _, alive = psutil.wait_procs(children, timeout=15)
        assert all(map(stopped, alive)), alive
        output = program.output()
    assert "Traceback" not in output
    if status == 0:
        assert len(re.findall(r"child \d \(pid \d+\) exited normally", output)) == 2, output


def test_ctrl_c_while_starting_stops_quietly(db_name):
    unreachable = f"mongodb://127.0.0.1:{free_port()}"  # the check waits 3 s for it
    env = {**os.environ, "MONGODB_URI": unreachable, "MONGODB_DB": db_name, "PORT": str(free_port())}
    process = psutil.Popen([sys.executable, ROOT / STAGE / "app.py", "--processes=2"], env=env,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while process.num_threads() == 1:  # PyMongo's threads: the database check has begun
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=15)
    assert (process.returncode, errors) == (0, "")


def test_the_debug_mode_works_with_one_process_only(mongodb_uri, db_name):
    with stage_program(STAGE, mongodb_uri, db_name, args=["--processes=2", "--debug"]) as program:
        assert program.process.wait(timeout=15) != 0
        assert program.output().strip() == (
            "error: --debug reloads the code when it changes: it works with one process only")


# --- The health check ---


async def test_the_health_check_says_ok_while_the_database_answers(db):
    async with served(load_stage(STAGE).make_app(db)) as base_url:
        response = await Client(base_url).fetch("/healthz")
    assert (response.code, response.body, response.headers["Content-Type"]) == (200, b"ok", "text/plain")
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_health_check_answers_503_when_the_database_does_not():
    nowhere = MotorClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=300)
    async with served(load_stage(STAGE).make_app(nowhere.test)) as base_url:
        response = await Client(base_url).fetch("/healthz")
    assert response.code == 503


# --- Behind nginx ---


def nginx_executable():
    # Not always on a user's PATH: Debian installs it in /usr/sbin.
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None)


@contextlib.contextmanager
def nginx(app_port, prefix):
    """nginx in the foreground with deploy/nginx.conf, its listening port and the
    app's own address set for this test, everything else in `prefix`; yields its port."""
    port = free_port()
    site = (DEPLOY / "nginx.conf").read_text()
    here = {"listen 80;": f"listen 127.0.0.1:{port};", "server app:8000;": f"server 127.0.0.1:{app_port};"}
    for old, new in here.items():
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    (prefix / "site.conf").write_text(site)
    # One process, which needs no root: no workers to hand over to another user.
    (prefix / "nginx.conf").write_text(f"""
        master_process off;
        pid {prefix}/nginx.pid;
        error_log {prefix}/error.log warn;
        events {{ worker_connections 64; }}
        http {{
            access_log {prefix}/access.log;
            client_body_temp_path {prefix}/client_body;
            proxy_temp_path {prefix}/proxy;
            fastcgi_temp_path {prefix}/fastcgi;
            uwsgi_temp_path {prefix}/uwsgi;
            scgi_temp_path {prefix}/scgi;
            include {prefix}/site.conf;
        }}
    """)
    command = [nginx_executable(), "-p", prefix, "-e", prefix / "error.log", "-c", prefix / "nginx.conf",
               "-g", "daemon off;"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not course.port_open("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, (prefix / "error.log").read_text()
            time.sleep(0.05)
        yield port
    finally:
        course.stop(process, signum=signal.SIGQUIT)  # nginx's graceful stop


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


def download_sha256(connection, path, pause=0):
    """The SHA-256 and size of what `path` sends, read a MiB at a time, with a `pause`
    (seconds) after the first: a slow reader, for a while."""
    connection.request("GET", path, headers={"Cookie": connection.cookies})
    response = connection.getresponse()
    assert response.status == 200
    sha256, size = hashlib.sha256(), 0
    while piece := response.read(MiB):
        sha256.update(piece)
        size += len(piece)
        time.sleep(pause if size == len(piece) else 0)
    return sha256.hexdigest(), size


@pytest.mark.skipif(nginx_executable() is None, reason="nginx is not installed (Debian: apt-get install nginx)")
def test_nginx_streams_a_large_file_both_ways_and_passes_on_the_clients_address(mongodb_uri, db_name, tmp_path):
    # The client calls from 127.0.0.2, so that the app can tell it from nginx (127.0.0.1).
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("no 127.0.0.2 here to call nginx from")
    size = 64 * MiB
    with stage_program(STAGE, mongodb_uri, db_name, args=["--processes=2", "--xheaders"]) as program, \
            nginx(int(program.url.rsplit(":", 1)[1]), tmp_path) as port:
        connection = Connection("127.0.0.1", port, timeout=120, source_address=("127.0.0.2", 0))
        assert connection.ask("GET", "/").status == 200
        # A browser on plain HTTP sends no Sec-Fetch-Site, only its Origin, which
        # cross_origin_protection compares with the Host that nginx passes on.
        form, form_type = multipart({"file": ("photo.png", image_bytes(), "image/png")})
        posted = connection.ask("POST", "/upload", form,
                                {"Content-Type": form_type, "Origin": f"http://127.0.0.1:{port}"})
        assert posted.status == 302, posted.body

        body = Stream(size)  # with a Content-Length, as `curl -T` sends it
        stored = connection.ask("PUT", "/upload/big.bin", body,
                                {"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        assert stored.status == 201, stored.body
        big = json.loads(stored.body)["id"]
        # Paused, a buffering nginx would read the rest from the app into a temporary file.
        assert download_sha256(connection, f"/uploads/{big}/orig", pause=1) == (body.sha256.hexdigest(), size)

        chunked = Stream(4 * MiB)  # no Content-Length: chunked, as a browser's stream would be
        stored = connection.ask("PUT", "/upload/chunked.bin", iter(lambda: chunked.read(MiB), b""),
                                encode_chunked=True)
        assert stored.status == 201, stored.body
        small = json.loads(stored.body)["id"]
        assert download_sha256(connection, f"/uploads/{small}/orig") == (chunked.sha256.hexdigest(), 4 * MiB)
        connection.close()
        output = program.output()

    # The app logged the client's address, which nginx passed on, not nginx's own.
    for line in ("201 PUT /upload/big.bin (127.0.0.2)", f"200 GET /uploads/{big}/orig (127.0.0.2)",
                 "201 PUT /upload/chunked.bin (127.0.0.2)"):
        assert line in output, output
    # nginx says so when it holds a body back in a temporary file, up or down: it never did.
    assert "temporary file" not in (tmp_path / "error.log").read_text()


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


def test_compose_points_the_app_at_the_replica_set_with_one_process_per_core():
    app = compose()["services"]["app"]
    assert app["command"] == ["python", "part4_production/app.py", "--processes=0", "--xheaders"]
    assert "processes" in load_stage(STAGE).options  # a real option of the stage
    uri = urllib.parse.urlsplit(app["environment"]["MONGODB_URI"])
    assert uri.netloc.split(",") == ["mongo1:27017", "mongo2:27017", "mongo3:27017"]
    assert urllib.parse.parse_qs(uri.query) == {"replicaSet": ["rs0"]}
    assert app["depends_on"]["mongo-init"] == {"condition": "service_completed_successfully"}
    # Docker waits 10 s by default before SIGKILL: longer than the graceful stop may take.
    options = load_stage(STAGE).options
    assert int(app["stop_grace_period"].removesuffix("s")) > options.shutdown_timeout + options.db_timeout
    assert "/healthz" in " ".join(app["healthcheck"]["test"])
    # Built from the repository's root, by deploy/Dockerfile, with the pinned packages.
    assert (DEPLOY / app["build"]["context"]).resolve() == ROOT
    dockerfile = (ROOT / app["build"]["dockerfile"]).read_text()
    assert "COPY requirements.txt ." in dockerfile and "pip install --no-cache-dir -r" in dockerfile
    assert "COPY part4_production/ part4_production/" in dockerfile
    # What Docker may read of the repository: only what the Dockerfile copies.
    allowed = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert {"*", "!requirements.txt", "!part4_production/"} <= set(allowed)


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


def test_the_nginx_configuration_streams_and_passes_on_the_client():
    site = (DEPLOY / "nginx.conf").read_text()
    lines = {line.strip() for line in site.splitlines() if not line.strip().startswith("#")}
    max_upload_size = load_stage(STAGE).options.max_upload_size
    assert max_upload_size == 4 * 1024**3 and "client_max_body_size 4g;" in lines  # nginx's g is GiB
    for line in ("proxy_request_buffering off;", "proxy_buffering off;", "proxy_http_version 1.1;",
                 "proxy_set_header X-Real-IP $remote_addr;",
                 "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                 "proxy_set_header X-Forwarded-Proto $scheme;"):
        assert line in lines
