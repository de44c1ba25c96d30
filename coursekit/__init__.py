"""coursekit: what the course's tests, benchmarks and notebooks share.

    stages      the stages, and the one way to load one (load_stage)
    serving     a Tornado app served in this process, over real HTTP (served), and a
                stage so, on a database of its own (stage_served)
    processes   a program run as a child process, a stage as a learner runs it
                (Program, StageProgram, StageLauncher), free ports
    database    the MongoDB to use: $MONGODB_URI, or the embedded SecantusDB
    clients     a cookie-keeping, XSRF-aware HTTP client, raw connections,
                multipart forms, what a page says
    images      sound, photo-like, damaged and crafted images
    waiting     waiting, with a bound, for something to become true (tenacity)
    proxy       a TCP proxy that can be paused: a database that hangs, at will
    browser     the Chromium the browser tests drive
    soak        many clients at once, hostile ones among them, on a stage run as a
                program; `python -m coursekit.soak` from the command line
    lab         what a notebook's cells use: a Session that owns what the notebook
                starts, the plots' colours, the exercises' checks
    notebooks   the notebooks run headless, each in a kernel of its own, on nbclient
                (the tests; notebooks/execute.py, which saves them)

`python3 course.py` installs the repository into .venv/ as an editable package
(pyproject.toml), so `import coursekit` works from the tests, from a benchmark
(`python bench/NAME.py`) and from a notebook's kernel alike. README.md, beside
this file, says how a test gets a running stage.
"""
