"""A short soak of every stage: concurrent uploads and downloads of random files,
mixed with hostile requests; none lost, none changed, no server error answered or
logged. The long one, from the command line: `.venv/bin/python -m coursekit.soak`
(coursekit/soak.py says more)."""

import pytest
from pymongo import MongoClient

from coursekit.soak import soak
from coursekit.stages import STAGES

RUNS_ON = STAGES  # every stage


@pytest.mark.takes(6)
def test_a_short_soak_with_hostile_requests_loses_nothing_and_logs_no_5xx(stage, program, mongodb_uri, db_name):
    with MongoClient(mongodb_uri) as mongo:
        counts = soak(stage, program(), mongo[db_name], seconds=4, clients=6, max_side=600, hostile=0.3)
    assert counts.uploads > 0 and counts.hostile > 0
    assert (counts.server_errors, counts.logged_server_errors, counts.mismatches, counts.lost) == (0, 0, 0, 0)
