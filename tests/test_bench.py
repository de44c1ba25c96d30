"""The benchmarks in bench/ still run: each in its quick mode, checking that it
prints its figures (never what they are: timings belong to the machine)."""

import os
import re
import signal
import subprocess
import sys

import pytest

from coursekit.processes import unmeasured
from coursekit.stages import ROOT

RUNS_ON = []  # the benchmarks start the stages they measure
pytestmark = pytest.mark.takes(15)

NUMBER = r"\d+(?:\.\d+)?"


# Seconds a benchmark may take, under the suite's limit for a test: past it, the test
# fails with what the benchmark printed, and the benchmark stops what it started.
BENCH_LIMIT = 100


def run_bench(script, *args, **env):
    bench = subprocess.Popen([sys.executable, ROOT / "bench" / script, "--quick", *args],
                             env={**unmeasured(os.environ), **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        output, errors = bench.communicate(timeout=BENCH_LIMIT)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGINT)  # as Ctrl+C: its `with` blocks stop the stages and databases it started
        output, errors = bench.communicate(timeout=15)
        raise AssertionError(f"{script} ran for over {BENCH_LIMIT} s; it printed:\n{output}{errors}") from None
    finally:
        bench.kill()  # if it is still running
        bench.wait()
    assert bench.returncode == 0, output + errors
    return output


def test_the_thumbnail_bench_prints_naive_fast_and_their_ratio():
    output = run_bench("thumbnail.py")
    rows = re.findall(rf"^(\w+) +{NUMBER}MB +{NUMBER}ms +{NUMBER}ms +{NUMBER}x +{NUMBER}ms$", output, re.M)
    assert rows == ["smooth", "photo", "grainy"], output
    scans = re.findall(rf"^(\d+) scans, {NUMBER} KB: decoded in {NUMBER} ms, {NUMBER} ms a scan; "
                       rf"part 2: (thumbnail made|refused: .*passes.*)$", output, re.M)
    assert [(int(count), answer.split(":")[0]) for count, answer in scans] == [
        (10, "thumbnail made"), (64, "thumbnail made"), (300, "refused"), (1300, "refused")], output


def test_the_blocking_bench_prints_both_modes_and_their_ratio(mongodb_uri):
    output = run_bench("blocking.py", MONGODB_URI=mongodb_uri)
    for where in ("on the event loop", "on the thread pool"):
        assert re.search(rf"^thumbnails {where} *: p50 +{NUMBER} ms +p99 +{NUMBER} ms +max +{NUMBER} ms", output,
                         re.M), output
    assert re.search(rf"^p99 ratio, loop / pool: {NUMBER}x$", output, re.M), output


def test_the_processes_bench_prints_each_way_its_ratios_and_how_it_spread_the_connections(mongodb_uri):
    output = run_bench("processes.py", MONGODB_URI=mongodb_uri)
    for label in ("1 process", "2 processes", "2 copies"):  # in each phase: new connections, kept-alive ones
        assert len(re.findall(rf"^{label} *: {NUMBER} requests/s \(median of: {NUMBER}\)$", output, re.M)) == 2, output
    assert len(re.findall(rf"^ratio, 2 / 1 processes: {NUMBER}x ", output, re.M)) == 2, output
    assert len(re.findall(rf"^ratio, 2 copies / 2 processes: {NUMBER}x$", output, re.M)) == 2, output
    for label in ("2 processes", "2 copies"):  # the 16 kept-alive connections, split between two processes
        held = re.search(rf"^{label} *: share of the CPU time, % each: \d+\+\d+; "
                         rf"connections each held: (\d+)\+(\d+)$", output, re.M)
        assert held and int(held[1]) + int(held[2]) == 16, output


@pytest.mark.takes(25)
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


def test_the_graceful_stop_bench_shows_part_3_dying_and_part_4_finishing_what_it_can(mongodb_uri):
    output = run_bench("graceful_stop.py", MONGODB_URI=mongodb_uri)
    part3, part4 = output.split("part4_production")
    for events in (part3, part4):
        assert re.search(rf"^ +{NUMBER} s  a new connection: refused$", events, re.M), output
    # Part 3 dies at once, both uploads unanswered, chunks left with no file.
    assert re.search(r"^ +[\d.]+ s  the process exits, status -15$", part3, re.M), output
    assert len(re.findall(r"^ +[\d.]+ s  upload [AB]: no answer, the connection was closed$", part3, re.M)) == 2
    assert re.search(r"left in the database: 0 files \[\], [12] chunks$", part3, re.M), output
    # Part 4 stores A, answers B when --shutdown_timeout=3 runs out, deletes its chunk, exits 0.
    assert re.search(r"^ +[\d.]+ s  upload A: 201 Created$", part4, re.M), output
    assert re.search(r"^ +[\d.]+ s  upload B: 503 Service Unavailable, Retry-After: 10$", part4, re.M), output
    assert re.search(r"^ +[\d.]+ s  the process exits, status 0$", part4, re.M), output
    assert "left in the database: 1 files ['A.bin'], 6 chunks" in part4, output  # A's 1.25 MiB: B's is gone
    assert "its log: stopping: cutting 1 requests short after 3.0 s, 1 of them uploads" in part4, output


def test_the_stalled_uploads_bench_prints_memory_with_and_without_the_bound(mongodb_uri):
    output = run_bench("stalled_uploads.py", MONGODB_URI=mongodb_uri)
    for bound in (100, 10):
        assert re.search(rf"^--max_uploads={bound} *: memory +[+-]{NUMBER} MB \(-?\d+ KiB an upload\); "
                         rf"\d+ held, \d+ refused with 503$", output, re.M), output

def test_the_c10k_bench_prints_memory_latency_and_pauses_beside_the_targets(mongodb_uri):
    output = run_bench("c10k.py", MONGODB_URI=mongodb_uri)
    row = (rf" +\+{NUMBER} MB +{NUMBER} KB +{NUMBER} ms +{NUMBER} ms +{NUMBER} ms +\d+ +{NUMBER} ms +{NUMBER} ms "
           rf"+\d+/\d+/\d+$")
    for label in ("part 3", "part 4"):
        assert re.search(rf"^{label}{row}", output, re.M), output
    assert re.search(rf"^target +{NUMBER} KB +{NUMBER} ms +0 ", output, re.M), output
    assert re.search(rf"^stored \d+ of \d+ uploads; peak memory \+{NUMBER} MB, against {NUMBER} MB", output, re.M), output


def test_the_c10k_bench_breaks_a_connections_memory_down_by_line_of_code(mongodb_uri):
    output = run_bench("c10k.py", "--breakdown", MONGODB_URI=mongodb_uri)
    assert re.search(rf"holds in part 4, once answered: {NUMBER} bytes", output), output
    assert re.search(rf"^ +{NUMBER} +{NUMBER}  tornado/iostream.py:\d+$", output, re.M), output


def test_the_decode_bench_prints_estimates_beside_measures_and_peaks_beside_budgets(mongodb_uri):
    output = run_bench("decode_budget.py", MONGODB_URI=mongodb_uri)
    kinds = re.findall(rf"^(PNG|GIF|WebP|JPEG)[^\n]*? {NUMBER} MB +{NUMBER} MB +{NUMBER} MB +{NUMBER}x$", output, re.M)
    assert len(kinds) == 13, output
    assert re.search(rf"^lowest estimated / measured: {NUMBER}x", output, re.M), output
    budgets = re.findall(rf"^ +(\d+) MiB +{NUMBER} MB +\+{NUMBER} MB +{NUMBER}x +{NUMBER} s$", output, re.M)
    assert budgets == ["32", "256"], output


def test_the_image_download_bench_prints_both_ways_of_serving_part_1s_image(mongodb_uri):
    output = run_bench("image_download.py", MONGODB_URI=mongodb_uri)
    for label in (r"streamed \(part 1\)", r"read whole \(small/whole_image\.py\)"):
        assert re.search(rf"^{label} *: first byte after {NUMBER} ms, last after {NUMBER} ms, "
                         rf"memory grew by {NUMBER} MB$", output, re.M), output


@pytest.mark.takes(70)
def test_the_live_bench_prints_memory_delays_and_errors_of_each_run_beside_the_targets(mongodb_uri):
    output = run_bench("live.py", MONGODB_URI=mongodb_uri)
    pair = rf"(?:{NUMBER} +{NUMBER}|- +-)"
    row = rf" +\d+ +[+-]{NUMBER} MB +-?{NUMBER} KB +{pair} +{pair} +{pair} +\d+ +{pair}$"
    for label in ("one process", "two processes", "one process, each frame made once",
                  "one process, --ping_interval=0", "permessage-deflate"):
        assert re.search(rf"^part5, {re.escape(label)}{row}", output, re.M), output
    assert re.search(rf"^target, one process +{NUMBER} KB +{NUMBER} +0$", output, re.M), output
    assert re.search(r"^\d+ sockets that never read, beside \d+ that do, \d+ uploads stored at once \(",
                     output, re.M), output
    for label in (r"--live_backlog=262144 \(the default\)", r"--live_backlog=1000000000 \(no bound\)",
                  "the default, each frame made once"):
        assert re.search(rf"^{label} +memory +[+-]{NUMBER} MB at the peak, +[+-]{NUMBER} MB after, the kernel's TCP "
                         rf"buffers +[+-]{NUMBER} MB; +{NUMBER} KB waited "
                         rf"for each; closed: [\w: ,]+; events the others missed: -?\d+$", output, re.M), output
