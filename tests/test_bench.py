"""The benchmarks in bench/ still run: each in its quick mode, checking that it
prints its figures (never what they are: timings belong to the machine)."""

import os
import re
import subprocess
import sys

from support import ROOT

NUMBER = r"\d+(?:\.\d+)?"


def run_bench(script, **env):
    result = subprocess.run([sys.executable, ROOT / "bench" / script, "--quick"], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_thumbnail_bench_prints_naive_fast_and_their_ratio():
    output = run_bench("thumbnail.py")
    rows = re.findall(rf"^(\w+) +{NUMBER}MB +{NUMBER}ms +{NUMBER}ms +{NUMBER}x +{NUMBER}ms$", output, re.M)
    assert rows == ["smooth", "photo", "grainy"], output


def test_the_blocking_bench_prints_both_modes_and_their_ratio(mongodb_uri):
    output = run_bench("blocking.py", MONGODB_URI=mongodb_uri)
    for where in ("on the event loop", "on the thread pool"):
        assert re.search(rf"^thumbnails {where} *: p50 +{NUMBER} ms +p99 +{NUMBER} ms +max +{NUMBER} ms", output,
                         re.M), output
    assert re.search(rf"^p99 ratio, loop / pool: {NUMBER}x$", output, re.M), output


def test_the_processes_bench_prints_one_and_two_processes_and_their_ratio(mongodb_uri):
    output = run_bench("processes.py", MONGODB_URI=mongodb_uri)
    for label in ("1 process", "2 processes"):
        assert re.search(rf"^{label} *: {NUMBER} requests/s \(median of: {NUMBER}\)$", output, re.M), output
    assert re.search(rf"^ratio, 2 / 1 processes: {NUMBER}x ", output, re.M), output


def test_the_hung_database_bench_prints_the_waits_of_both_stages():
    output = run_bench("hung_database.py")
    for label in ("part 3", "part 4"):
        answers = rf"{NUMBER} s \((?:\d+|no answer)\)"
        assert re.search(rf"^{label} \(.*\): {answers}, {answers}, {answers}; 200 again {NUMBER} s after", output,
                         re.M), output


def test_the_descriptors_bench_prints_both_stages_out_of_files():
    output = run_bench("descriptors.py")
    for label in ("part 3", "part 4"):
        assert re.search(rf"^{label} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}% +\d+ in {NUMBER} s +\d+ in {NUMBER} s$",
                         output, re.M), output


def test_the_stalled_uploads_bench_prints_memory_with_and_without_the_bound(mongodb_uri):
    output = run_bench("stalled_uploads.py", MONGODB_URI=mongodb_uri)
    for bound in (100, 10):
        assert re.search(rf"^--max_uploads={bound} *: memory +[+-]{NUMBER} MB \(-?\d+ KiB an upload\); "
                         rf"\d+ held, \d+ refused with 503$", output, re.M), output
