"""How a test gets a running stage: one database server per session, a database of
each test's own, and the stage served in two ways.

Every test module says at its top which stages it runs on, in `RUNS_ON` (a list of
stage names, empty for a module about no stage): a test that takes `stage`, or a
fixture that does, runs once for each of them. One test may run on fewer, marked
`@pytest.mark.runs_on("part3_streaming", ...)`; one whose stage goes with another
parameter parametrizes both itself (`parametrize("stage, case", ..., scope="module")`).
Then a test asks for

- `serve(**settings)`: the stage's `make_app(db, **settings)` served by this
  process on a free port, over real HTTP; it returns a coursekit Client that has
  visited the home page (so it holds the XSRF cookie, as a browser would).
  `client` is `serve()`. In process, a test can reach into the app (`client.app`):
  its settings, its handlers, its logger.
- `program(*args)`: the stage run as a program, `python <stage>/app.py ARGS`, as a
  learner runs it, on a free port; it returns the coursekit StageProgram, once it
  listens. `program.run(*args)` runs one to its end instead: (exit status, output).

Both use the database `db` (Motor) named `db_name`, on the server at `mongodb_uri`:
$MONGODB_URI when set, else the embedded database, started once for the session.

A test whose client must misbehave (stop halfway, trickle, go silent) speaks HTTP by
hand: `connect(client)` opens a coursekit RawConnection, and `start_upload(client,
name, size, data)` begins a PUT /upload/<name> on one.

The suite runs side by side (`python3 course.py test` asks pytest-xdist for several
workers, each a process with a database server of its own): a test may run in any
order, next to any other. One that takes seconds says so, `@pytest.mark.takes(30)`:
the longest start first, so that none is left to run alone at the end. `--stage
NAME` keeps the tests that concern one stage (its RUNS_ON), as `python3 course.py
test NAME` does. pyproject.toml gives each test a time limit (pytest-timeout): a
test that hangs fails, with its name.
"""

import contextlib
import os
from pathlib import Path

import pytest
from motor.motor_tornado import MotorClient

from coursekit.clients import RawConnection
from coursekit.database import database_of_its_own, embedded_db, local_address
from coursekit.processes import StageLauncher, free_port
from coursekit.proxy import PausableProxy
from coursekit.serving import stage_client
from coursekit.stages import ROOT, STAGES, StageCode, load_stage


def pytest_addoption(parser):
    parser.addoption("--yours", action="store_true",
                     help="run the exercises' checks (tests/exercises/) on your working copy of each stage, "
                          "as `python3 course.py check` does")
    parser.addoption("--copies", type=Path, default=ROOT, metavar="FOLDER",
                     help="with --yours: the folder that holds your copies of the stages (default: the repository), "
                          "as `python3 course.py check FOLDER/STAGE` gives it")
    parser.addoption("--stage", choices=STAGES,
                     help="run only the tests that concern this stage (those of its modules' RUNS_ON)")


def pytest_configure(config):
    config.addinivalue_line("markers", "runs_on(*stages): this test runs on these of its module's RUNS_ON only")
    config.addinivalue_line("markers", "takes(seconds): about how long this test takes alone; the longest start first")


def pytest_collection_modifyitems(config, items):
    """Keep the tests of --stage only; then put the longest first (each worker takes
    the next test when it is free: long ones last would leave the others idle),
    the rest in their order, so a module's tests still run one after the other."""
    if stage := config.getoption("stage"):
        kept, dropped = [], []
        for item in items:
            (kept if concerns(item, stage) else dropped).append(item)
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    items.sort(key=lambda item: -expected_seconds(item))  # sort() is stable: the rest keep their order


def concerns(item, stage):
    """Whether `item` tests `stage`: it runs on it, or its module is about it."""
    params = getattr(item, "callspec", None) and item.callspec.params
    if params and "stage" in params:
        return params["stage"] == stage
    return stage in getattr(item.module, "RUNS_ON", ())


def expected_seconds(item):
    marker = item.get_closest_marker("takes")
    return marker.args[0] if marker else 0


def pytest_generate_tests(metafunc):
    module = metafunc.module.__name__
    runs_on = getattr(metafunc.module, "RUNS_ON", None)
    assert runs_on is not None, f"{module} should say which stages it runs on: RUNS_ON = [...]"
    assert set(runs_on) <= set(STAGES), f"{module}: RUNS_ON names no stage: {runs_on}"
    if marker := metafunc.definition.get_closest_marker("runs_on"):
        assert set(marker.args) <= set(runs_on), f"{metafunc.definition.name}: runs_on outside {module}'s RUNS_ON"
        runs_on = list(marker.args)
    parametrized = any("stage" in argnames(marker) for marker in metafunc.definition.iter_markers("parametrize"))
    if "stage" in metafunc.fixturenames and not parametrized:
        metafunc.parametrize("stage", runs_on, scope="module")


def argnames(parametrize):
    names = parametrize.args[0]
    return [name.strip() for name in names.split(",")] if isinstance(names, str) else list(names)


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory):
    """MONGODB_URI when set (a real MongoDB), else the embedded database on a free port."""
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    with embedded_db(free_port(), tmp_path_factory.mktemp("secantus")) as uri:
        yield uri


@pytest.fixture
def db_name(mongodb_uri):
    """A database name of the test's own, dropped afterwards: whatever wrote there,
    the test itself or a stage it started as a program."""
    with database_of_its_own(mongodb_uri) as name:
        yield name


@pytest.fixture
async def db(mongodb_uri, db_name):
    """A database of the test's own (db_name drops it afterwards)."""
    client = MotorClient(mongodb_uri)
    yield client[db_name]
    client.close()


@pytest.fixture
def proxied(mongodb_uri, db_name):
    """proxied(**client_options): (proxy, db), the test's database reached through a
    PausableProxy by a Motor client of those options, so that the test can make every
    operation on it hang, and go on again. Both end with the test."""
    address = local_address(mongodb_uri)
    if address is None:
        pytest.skip("the proxy goes in front of one database server on this machine: MONGODB_URI names another")
    with contextlib.ExitStack() as ends:
        def through_a_proxy(**client_options):
            proxy = ends.enter_context(PausableProxy(*address))
            client = MotorClient(f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true", **client_options)
            ends.callback(client.close)
            return proxy, client[db_name]

        yield through_a_proxy


@pytest.fixture(scope="module")
def stage_folder(stage):
    """The folder of the stage the tests run on (the exercises' checks give a copy's)."""
    return ROOT / stage


@pytest.fixture(scope="module")
def stage_app(stage):
    """The stage's app.py, imported."""
    return load_stage(stage)


@pytest.fixture(scope="module")
def stage_code(stage_app):
    """What the stage defines, whichever of its modules defines it (coursekit's
    StageCode): `stage_code.check_filename`, `stage_code.module_of("make_thumbnail")`."""
    return StageCode(stage_app)


@pytest.fixture
async def serve(stage, stage_app, db):
    """serve(**settings): a Client of the stage's make_app(db, **settings), served on a
    free port of 127.0.0.1, that has visited the home page. `db=` serves another
    database; `visit=False` leaves the client as new, with no cookie;
    `server_options` go to Tornado's HTTPServer (xheaders=True, as behind a proxy).
    The client's `app` is the Application served, for a test that changes its settings."""
    async with contextlib.AsyncExitStack() as servers:
        async def start(db=db, **options):
            return await servers.enter_async_context(stage_client(stage_app, stage, db, **options))

        yield start


@pytest.fixture
async def client(serve):
    """A Client of the stage's make_app(db), served on a free port."""
    return await serve()


@pytest.fixture
def program(stage_folder, mongodb_uri, db_name):
    """program(*args): the stage run as a program on the test's database, listening;
    stopped after the test (as Ctrl+C would). program.run(*args): one run to its end."""
    with StageLauncher(stage_folder, mongodb_uri, db_name) as launcher:
        yield launcher


@pytest.fixture
async def connect():
    """connect(client): a RawConnection to the client's stage (or to a base URL), open,
    that sends the client's XSRF cookie and token with each request; closed after the
    test, if the test has not closed it."""
    async with contextlib.AsyncExitStack() as connections:
        async def open_one(client):
            return await connections.enter_async_context(RawConnection(client))

        yield open_one


@pytest.fixture
def start_upload(connect):
    """start_upload(client, name, size, data): a PUT /upload/<name> of `size` bytes
    (parts 3 and 4), on a RawConnection of its own, of which only `data` is sent: an
    upload under way. Returns the connection, to send the rest on (or not), read the
    answer, or close."""
    async def start(client, name, size, data=b""):
        upload = await connect(client)
        await upload.send_headers("PUT", f"/upload/{name}", [f"Content-Length: {size}"], data)
        return upload

    return start
