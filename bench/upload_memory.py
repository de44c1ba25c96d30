"""Memory during a big upload: 1 GiB streamed into part 3 (PUT), and beside it a
smaller file buffered by part 2 (a form), whose memory grows with the file.

    python bench/upload_memory.py            # 1 GiB to part 3, 100 MiB to part 2
    python bench/upload_memory.py --quick    # 64 MiB and 16 MiB: checks the script works

Each stage runs in a child process of its own, on the embedded database (or the
MongoDB at MONGODB_URI), so the memory measured is its alone: the peak of its
resident memory during the upload, less what it held before (bench/harness.py).
curl sends the file, with the XSRF token, as part 3's lesson does. Part 2 takes
images only: it refuses these random bytes (400), once it has spent the memory.
bench/big_upload.py measures more (the driver's rate, CPU, three runs of each).
Part 3's lesson shows this output: a line per stage, its figures not padded to a
width, as a learner's figures may have more digits or fewer.
"""

import os

from harness import MB, MiB, Server, big_file, command_line, curl_upload, memory, put_file, random_file


def main():
    parser = command_line(__doc__, "64 MiB to part 3, 16 MiB to part 2")
    args = parser.parse_args()
    sizes = {"part3": 64 * MiB, "part2": 16 * MiB} if args.quick else {"part3": 1024 * MiB, "part2": 100 * MiB}

    with big_file(sizes["part3"]) as (path, db_uri, db_name), \
            Server("part3", db_uri, db_name) as part3, Server("part2", db_uri, db_name) as part2:
        with memory(part3) as figures:
            seconds, _ = put_file(part3.url, path)
        print(f"part 3, a {sizes['part3'] // MiB} MiB file streamed in (PUT): {seconds:.1f} s, "
              f"{sizes['part3'] / MB / seconds:.0f} MB/s; its memory grew by {max(figures['growth'], 0):.1f} MB")
        small = random_file(path.with_name("smaller.bin"), sizes["part2"])
        with memory(part2) as figures:
            seconds, _ = curl_upload(part2.url, small, form=True, expected=(302, 400))
        print(f"part 2, a {sizes['part2'] // MiB} MiB file held whole (form): {seconds:.1f} s; "
              f"its memory grew by {max(figures['growth'], 0):.1f} MB, {figures['growth'] * MB / sizes['part2']:.1f} "
              "times the file")
    print(f"(load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
