"""Part 4, exercise 4: draining before the stop.

A load balancer asks /healthz every few seconds. When a process stops, the port
closes at once, and until the balancer's next check it still sends visitors there,
who find the port closed. So part 4 gets an option, --drain_delay (seconds, 0 by
default: the stop as before). With it, a SIGTERM (or Ctrl+C, or the parent closing
the pipe) first starts the drain, for --drain_delay seconds:

- GET /healthz answers 503, with a message saying the server is "stopping" (and,
  as every 503 of the stage, Retry-After: 10);
- every other request is served as usual, on new connections too: the port is
  still open.

Then the stop goes on as before: the port refuses new connections, the requests
under way finish, and the process exits with status 0.

The check runs the stage as a program, `python app.py --drain_delay=5`, sends it
SIGTERM, asks for /healthz and the home page on new connections, then waits for
the port to close (within 30 s) and the process to exit.
"""

import signal
import time

from coursekit.clients import Client, answer
from coursekit.processes import port_open
from coursekit.waiting import eventually

RUNS_ON = ["part4_production"]

DRAIN = 5  # seconds
LIMIT = 30  # seconds: a bound, not a delay


async def test_a_sigterm_drains_before_the_stop(program):
    _, usage = program.run("--help")
    assert "--drain-delay" in usage or "--drain_delay" in usage, (  # Tornado's --help shows dashes
        "part 4 should have an option --drain_delay; --help does not list it")
    running = program(f"--drain_delay={DRAIN}")
    client = Client(running.url, request_timeout=LIMIT)
    response = await client.fetch("/healthz")
    assert response.code == 200, f"before any stop, GET /healthz answers 200 as before; it answered {answer(response)}"

    running.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()

    async def unhealthy():
        return (await client.fetch("/healthz", headers={"Connection": "close"})).code == 503

    await eventually(unhealthy, timeout=DRAIN - 1)
    response = await client.fetch("/healthz", headers={"Connection": "close"})
    assert "stopping" in answer(response), (
        f'during the drain, the 503 of /healthz should say the server is "stopping"; it answered {answer(response)}')
    assert response.headers.get("Retry-After") == "10", (
        f"a 503 says when to come back, as every 503 of the stage: Retry-After: 10; it sent {dict(response.headers)}")
    home = await client.fetch("/", headers={"Connection": "close"})  # a new connection: the port is still open
    assert home.code == 200, f"during the drain, the home page is served as usual (200); it answered {answer(home)}"
    assert time.monotonic() - sent < DRAIN, "the machine is too slow for this check: the drain ended before it was seen"

    await eventually(lambda: not port_open("127.0.0.1", running.port), timeout=LIMIT)
    assert time.monotonic() - sent >= DRAIN - 0.5, (
        f"the port should stay open for the drain, --drain_delay={DRAIN} s; it closed after "
        f"{time.monotonic() - sent:.1f} s")
    await eventually(lambda: running.process.poll() is not None, timeout=LIMIT)
    assert running.process.returncode == 0, (
        f"once drained and stopped, the process exits with status 0; it exited with {running.process.returncode}:\n"
        f"{running.output()[-2000:]}")
    assert "Traceback" not in running.output(), f"no traceback in the log:\n{running.output()[-3000:]}"
