"""Fixtures: one database server per test session, a fresh database per test,
and each stage served over real HTTP on a free port."""

import os
import uuid

import pytest
from motor.motor_tornado import MotorClient
from pymongo import MongoClient

from support import STAGES, Client, course, free_port, load_stage, served


def pytest_addoption(parser):
    parser.addoption("--yours", action="store_true",
                     help="run the exercises' checks (tests/exercises/) on your working copy of each stage, "
                          "as `python3 course.py check` does")


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory):
    """MONGODB_URI when set (a real MongoDB), else the embedded database on a free port."""
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    with course.embedded_db(free_port(), tmp_path_factory.mktemp("secantus")) as uri:
        yield uri


@pytest.fixture
def db_name(mongodb_uri):
    """A database name of the test's own, dropped afterwards: whatever wrote there,
    the test itself or a stage it started as a program."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    with MongoClient(mongodb_uri) as client:
        client.drop_database(name)


@pytest.fixture
async def db(mongodb_uri, db_name):
    """A database of the test's own (db_name drops it afterwards)."""
    client = MotorClient(mongodb_uri)
    yield client[db_name]
    client.close()


@pytest.fixture(params=STAGES)
def stage(request):
    """The name of each stage in turn: tests that take it run on every stage."""
    return request.param


@pytest.fixture
async def client(stage, db):
    """A Client for the stage's make_app(db), served on a free port of 127.0.0.1."""
    async with served(load_stage(stage).make_app(db)) as base_url:
        yield Client(base_url, db)
