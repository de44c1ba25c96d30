"""Part 4, exercise 2: a quiet health check.

A load balancer asks for /healthz every few seconds, and each answer is a line of
the access log ("tornado.access"): the lines worth reading drown. make_app() gives
the application a `log_function` setting that logs as Tornado does (the same
levels: INFO below 400, WARNING below 500, ERROR above), every request but a
/healthz answered 200: a /healthz that fails (503, the database down) is logged.
"""

import contextlib
import logging

from motor.motor_tornado import MotorClient

from coursekit.clients import answer
from coursekit.processes import free_port

RUNS_ON = ["part4_production"]


def access_lines(caplog):
    return [record.getMessage() for record in caplog.records if record.name == "tornado.access"]


async def test_only_the_failing_health_checks_are_logged(client, serve, caplog):
    caplog.set_level(logging.INFO, logger="tornado.access")
    caplog.clear()
    response = await client.fetch("/healthz")
    assert response.code == 200, (
        f"GET /healthz should answer 200 while the database answers; it answered {answer(response)}")
    lines = access_lines(caplog)
    assert not any("/healthz" in line for line in lines), (
        f"a GET /healthz answered 200 should leave no line in the access log; it logged {lines}")
    response = await client.fetch("/")
    missing = await client.fetch("/no-such-page")
    assert (response.code, missing.code) == (200, 404), "the home page and the 404 page work as before"
    lines = access_lines(caplog)
    assert any(line.startswith("200 GET / (") for line in lines), (
        f'every other request is logged as before, "200 GET / (127.0.0.1) 1.23ms"; the access log has {lines}')
    warnings = [record.getMessage() for record in caplog.records
                if record.name == "tornado.access" and record.levelno == logging.WARNING]
    assert any(line.startswith("404 GET /no-such-page") for line in warnings), (
        f"a 404 is logged as before, as a WARNING; the access log's warnings are {warnings}")

    down = MotorClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=300)  # nobody there
    with contextlib.closing(down):
        unreachable = await serve(db=down.unreachable, visit=False)
        caplog.clear()
        response = await unreachable.fetch("/healthz")
    assert response.code == 503, (
        f"with the database down, GET /healthz should answer 503; it answered {answer(response)}")
    errors = [record.getMessage() for record in caplog.records
              if record.name == "tornado.access" and record.levelno == logging.ERROR]
    assert any(line.startswith("503 GET /healthz") for line in errors), (
        f'a /healthz that fails is logged, as an ERROR: "503 GET /healthz (127.0.0.1) ..."; the access log has '
        f"{access_lines(caplog)}")
