"""A short soak of every stage: concurrent uploads and downloads of random files,
none lost, none changed, no server error. The long one: tests/soak.py."""

from soak import soak


def test_a_short_soak_loses_nothing(stage, mongodb_uri):
    counts, memory_start, memory_end = soak(stage, mongodb_uri, seconds=4, clients=6, max_side=600)
    assert counts.uploads > 0
    assert (counts.server_errors, counts.mismatches, counts.lost) == (0, 0, 0)
