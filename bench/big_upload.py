"""A big upload (1 GiB): part 3 streams it into GridFS, part 2 buffers it first.

    python bench/big_upload.py            # 1 GiB, 3 runs of each
    python bench/big_upload.py --quick    # 32 MiB, 1 run: checks the script works

Part 3 gets it by PUT (curl -T), as the lesson does. Part 2 gets the same bytes
in a form (curl -F), its body limits raised to 2 GiB for the comparison: Tornado
reads the whole body into memory before the handler runs, and the multipart parser
copies the file out of it. The file is random bytes, so part 2 then refuses it
(it takes images only, 400): the memory was spent all the same.
"""

from harness import MB, MiB, Server, big_file, command_line, curl_upload, median, memory, put_file


def main():
    parser = command_line(__doc__, "a small file, one run")
    args = parser.parse_args()
    size, runs = (32 * MiB, 1) if args.quick else (1024 * MiB, 3)

    with big_file(size) as (path, db_uri, db_name):
        print(f"Uploads of a {size / MiB:.0f} MiB file with curl, median of {runs} runs")
        print(f"{'':36} {'MB/s':>6} {'memory peak':>12} {'peak / file size':>17}")
        with Server("part3", db_uri, db_name) as part3, Server("part2", db_uri, db_name) as part2:
            rows = []
            # Part 2 refuses the random bytes (400), once it has spent the memory.
            for name, server, upload in [
                ("part 3, streamed (PUT)", part3, lambda: put_file(part3.url, path)[0]),
                ("part 2, buffered (POST form)", part2, lambda: curl_upload(part2.url, path, form=True,
                                                                            expected=(302, 400))[0]),
            ]:
                speeds, growths = [], []
                for _ in range(runs):
                    with memory(server) as figures:
                        speeds.append(size / MB / upload())
                    growths.append(figures["growth"])
                rows.append((median(speeds), max(growths)))
                print(f"{name:36} {rows[-1][0]:6.0f} {rows[-1][1]:+9.1f} MB {rows[-1][1] / (size / MB):16.1f}x")
        print(f"(part 2 needs {rows[1][1] / max(rows[0][1], 0.1):.0f} times the memory; "
              "target for part 3: +24 MB at most)")


if __name__ == "__main__":
    main()
