"""The lessons tell the truth, and are built alike.

The documents checked are every Markdown file of the repository (the stages'
lessons, README.md, notebooks/README.md, bench/README.md). What each kind of
fenced block means, and how it is checked:

- ```python: an excerpt of the stage's app.py. A line holding only `...` (indented
  or not) marks code left out; each run of lines between such marks must be whole,
  consecutive lines of the file, and the runs of one block in the order quoted.
- ```LANG file=PATH, in any language (nginx, html+jinja, yaml, javascript, python):
  an excerpt of the file at PATH, relative to the document, checked the same way.
  A block that quotes a file must say which: no other language is allowed.
- ```console: a session the tests run, in a scratch folder holding photo.png,
  against the stage served at http://localhost:8000 (for a document outside a stage:
  in the repository's root, no server). Each command starts with `$ `; the lines
  after it are its output, compared exactly. A block must open with a command.
  `serve=small/NAME.py`: a session of its own against that program of the lesson
  (its smallest version of an idea, at most 40 lines, run as
  `python3 course.py run STAGE/small/NAME.py` serves it), every one of which has
  such a block. `in=root`: a session of its own in the repository's root, with no
  server. `figures=vary`: numbers in the output (a time, a size) are not compared,
  the rest is. Every session runs with the course's environment active, as after
  `source .venv/bin/activate`: `python` is the venv's.
- ```pycon: a doctest, run against the test's database.
- ```sh: commands to type that the tests cannot run (a server that runs until
  Ctrl+C, Docker, a benchmark taking minutes), without prompts. The scripts, stages,
  files and options they name must exist.
- ```output: what a program prints (a benchmark's table), not run.
- ```mermaid: a diagram (GitHub draws it). ```text: any other text, not checked.

Every link of a document leads to a file that exists, and to a heading of it
(coursekit.links; notebooks are checked by test_notebooks.py alike).

A stage's lesson opens with what the learner will learn (bullets) and has at least
one diagram; it closes with what was built, a trade-offs table (choice, what it
buys, what it costs), exercises, and a link to the next stage. A paragraph that
gives a measured figure (a time, a speed, a memory growth, a ratio) names the
bench/ script that prints it."""

import asyncio
import doctest
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from coursekit.images import lesson_photo
from coursekit.links import dead_links
from coursekit.processes import Program, free_port
from coursekit.stages import ROOT, STAGES, lesson_programs, load_stage

RUNS_ON = STAGES  # every stage

DOCUMENTS = sorted(path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*.md")
                   if not any(part.startswith(".") for part in path.relative_to(ROOT).parts))
LESSONS = [f"{stage}/README.md" for stage in STAGES]
BLOCK_KINDS = {"python", "console", "pycon", "sh", "output", "mermaid", "text"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
ELLIPSIS = re.compile(r"^[ \t]*\.\.\.[ \t]*\n", re.M)


class Block:
    """A fenced block of a document: its kind (the language), `file=` if given, its
    text, and the line of the document it starts on."""

    def __init__(self, document, match):
        self.document, self.text = document, match.group(2)
        info = match.group(1).split()
        self.kind = info[0] if info else ""
        self.attributes = dict(word.split("=", 1) for word in info[1:] if "=" in word)
        self.line = match.string.count("\n", 0, match.start()) + 1

    def __repr__(self):
        return f"{self.document} line {self.line}"

    @property
    def quoted_file(self):
        """The file this block quotes, if it quotes one."""
        if "file" in self.attributes:
            return (ROOT / self.document).parent / self.attributes["file"]
        if self.kind == "python" and self.stage:
            return ROOT / self.stage / "app.py"
        return None

    @property
    def stage(self):
        first = Path(self.document).parts[0]
        return first if first in STAGES else None


def blocks(document, kind=None):
    text = (ROOT / document).read_text()
    return [block for block in (Block(document, match) for match in FENCE.finditer(text))
            if kind is None or block.kind == kind]


def excerpts(block):
    """The runs of quoted lines between the `...` marks of a code block."""
    runs = ELLIPSIS.split(block)
    return [run.strip("\n") for run in runs if run.strip()]


def find_lines(lines, run, start=0):
    """The index of the first line from `start` where the lines of `run` follow
    one another in `lines`, whole; -1 if nowhere."""
    wanted = run.split("\n")
    for index in range(start, len(lines) - len(wanted) + 1):
        if lines[index : index + len(wanted)] == wanted:
            return index
    return -1


def misquoted(text, path):
    """The runs of `text` that are not lines of the file `path`, whole and in order: [] if none."""
    lines = Path(path).read_text().split("\n")
    position, wrong = 0, []
    for run in excerpts(text):
        found = find_lines(lines, run, position)
        if found < 0:
            wrong.append(run)
        else:
            position = found + run.count("\n") + 1
    return wrong


# --- Blocks are of a known kind, and quotes are the code ---


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_block_says_what_it_is(document):
    for block in blocks(document):
        assert block.kind in BLOCK_KINDS or "file" in block.attributes, (
            f"{block}: a ```{block.kind} block must name the file it quotes (```{block.kind} file=PATH), "
            f"or be one of {sorted(BLOCK_KINDS)}")
        if block.kind == "python":
            assert block.quoted_file, f"{block}: a ```python block outside a stage names its file= "
        if block.quoted_file:
            assert block.quoted_file.is_file(), f"{block}: no such file {block.quoted_file}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_links_lead_somewhere(document):
    assert not dead_links(ROOT / document)


def test_the_lesson_quotes_code(stage):
    assert len(blocks(f"{stage}/README.md", "python")) >= 3, "a lesson walks through its code"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_code_quoted_is_the_files_code_line_by_line_and_in_order(document):
    for block in blocks(document):
        if block.quoted_file:
            wrong = misquoted(block.text, block.quoted_file)
            assert not wrong, (f"{block} quotes lines that are not in {block.quoted_file.relative_to(ROOT)}, "
                               "or not whole, or not in this order:\n" + "\n---\n".join(wrong))


def test_excerpts_split_at_ellipsis_lines():
    block = "def f():\n    a = 1\n    ...\n    return a\n"
    assert excerpts(block) == ["def f():\n    a = 1", "    return a"]


def test_an_excerpt_must_be_whole_lines_in_order(tmp_path):
    code = tmp_path / "code.py"
    code.write_text("def f():\n    a = 1\n    return a\n")
    assert misquoted("def f():\n    a = 1\n...\n    return a\n", code) == []
    assert misquoted("    return a\n...\ndef f():\n", code) == ["def f():"]  # out of order
    assert misquoted("a = 1\n", code) == ["a = 1"]  # part of a line
    assert misquoted("    a = 1\n    return b\n", code) == ["    a = 1\n    return b"]


# --- Commands to type: run, or at least naming what exists ---

LESSON_HOST = "localhost:8000"  # where a lesson serves its stage
SMALL_LINES = 40
MARK = "#-- status"


def where(block):
    """Where a ```console block runs: "" (the stage served, or outside a stage the
    repository's root), "root", or the small program it is served by."""
    return block.attributes.get("serve") or ("root" if block.attributes.get("in") == "root" else "")


def shell_session(document, place=""):
    """[(command, expected output, whether figures vary)] for the ```console blocks of
    a document that run at `place` (see where())."""
    session = []
    for block in blocks(document, "console"):
        assert block.text.startswith("$ "), (
            f"{block}: a ```console block opens with a `$ ` command; mark what is not run as ```sh "
            "(commands) or ```output (what a program prints)")
        if where(block) != place:
            continue
        vary = block.attributes.get("figures") == "vary"
        for line in block.text.splitlines():
            if line.startswith("$ "):
                session.append((line[2:], [], vary))
            else:
                session[-1][1].append(line)
    return [(command, "\n".join(output), vary) for command, output, vary in session]


def figures_hidden(text):
    """`text` with each number replaced by N: 'took 1.25 s' and 'took 0.9 s' read alike."""
    return re.sub(r"\d+", "N", text)


async def run_session(session, cwd, base_url=None):
    """Run the commands of `session` with bash, in `cwd`; check each one's status
    and output. The lesson's localhost:8000 becomes `base_url`'s address."""
    script = "".join(f"{command}\necho '{MARK}' $?\n" for command, _, _ in session)
    address = base_url.split("://", 1)[1] if base_url else None
    if address:
        script = script.replace(LESSON_HOST, address)
    # A stage may be served by this test's event loop: wait for bash without blocking it.
    venv = Path(sys.executable).parent  # what `source .venv/bin/activate` puts first
    env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv.parent)}
    bash = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    stdout, _ = await bash.communicate()
    # [output, status, output, status, ..., ""]: one output and status per command
    parts = re.split(rf"^{MARK} (\d+)\n", stdout.decode(), flags=re.M)
    assert len(parts) == 2 * len(session) + 1, stdout.decode()
    for (command, expected, vary), output, status in zip(session, parts[0::2], parts[1::2]):
        assert status == "0", f"`{command}` failed:\n{output}"
        output = output.rstrip("\n")
        if address:
            expected = expected.replace(LESSON_HOST, address)
        if vary:
            output, expected = figures_hidden(output), figures_hidden(expected)
        assert output == expected, command


def test_figures_vary_compares_all_but_the_numbers():
    assert figures_hidden("lag: 212 ms, then 1.5 ms") == figures_hidden("lag: 87 ms, then 0.25 ms")
    assert figures_hidden("lag: 212 ms") != figures_hidden("lag: 212 s")


def photo_folder(tmp_path):
    """The scratch folder a lesson's commands run in: photo.png, 300x200."""
    (tmp_path / "photo.png").write_bytes(lesson_photo())
    return tmp_path


async def test_the_lessons_shell_commands_work_as_written(stage, client, tmp_path, mongodb_uri, db_name):
    document = f"{stage}/README.md"
    session = shell_session(document)
    assert session, "a lesson gives commands to try"
    # Part 5's change stream, which its server.py runs beside the app: its sockets wait for it.
    feed = client.app.settings.get("feed")
    watching = asyncio.ensure_future(feed.run()) if feed else None
    try:
        await run_session(session, photo_folder(tmp_path), client.base_url)
    finally:
        if watching:
            watching.cancel()

    for block in blocks(document, "pycon"):
        # The lesson's database is the stage's default, named after it; the test's is its own.
        text = block.text.replace("mongodb://localhost:27017", mongodb_uri).replace(f".{stage}\n", f".{db_name}\n")
        test = doctest.DocTestParser().get_doctest(text, {}, document, document, block.line)
        runner = doctest.DocTestRunner()
        await asyncio.to_thread(runner.run, test)
        assert runner.summarize(verbose=False).failed == 0


def small_programs(stage):
    """The lesson's smallest versions of its ideas, as it names them: `small/NAME.py`."""
    return [f"small/{path.name}" for path in lesson_programs(stage)]


def test_each_small_program_is_small_and_run_by_the_lesson(stage):
    document = f"{stage}/README.md"
    assert small_programs(stage), f"{stage}: a lesson's chapters open with the smallest version of their idea, in small/"
    served = {where(block) for block in blocks(document, "console")} - {"", "root"}
    assert served == set(small_programs(stage)), (
        f"{document}: each program in small/ has a ```console serve=small/NAME.py block, and each such block "
        f"names a program there (programs: {small_programs(stage)}, blocks: {sorted(served)})")
    for name in small_programs(stage):
        lines = (ROOT / stage / name).read_text().splitlines()
        assert len(lines) <= SMALL_LINES, f"{stage}/{name}: {len(lines)} lines; the smallest version is {SMALL_LINES} at most"
        quoted = [block for block in blocks(document, "python") if block.attributes.get("file") == name]
        assert quoted and not ELLIPSIS.search(quoted[0].text), f"{document} quotes {name} whole"


async def test_the_lessons_small_programs_work_as_written(stage, tmp_path, mongodb_uri, db_name):
    document = f"{stage}/README.md"
    for name in small_programs(stage):
        port = free_port()
        env = {"PORT": str(port), "MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name}
        with Program([sys.executable, ROOT / stage / name], port, env) as program:
            await run_session(shell_session(document, name), photo_folder(tmp_path), program.url)


async def test_the_lessons_commands_from_the_root_work_as_written(stage):
    session = shell_session(f"{stage}/README.md", "root")
    if session:
        await run_session(session, ROOT)


@pytest.mark.parametrize("document", [document for document in DOCUMENTS if document not in LESSONS])
async def test_other_documents_shell_commands_work_as_written(document):
    """Outside a stage, a console session runs in the repository's root, with no server."""
    session = shell_session(document) + shell_session(document, "root")
    assert not blocks(document, "pycon"), "a doctest needs a stage's database: put it in a lesson"
    if session:
        await run_session(session, ROOT)


PATH_WORD = re.compile(r"^(?:\.\./)?[\w-]+(?:/[\w.-]*)+$")  # part3_streaming/app.py, bench/, deploy/nginx.conf


def command_problems(command):
    """What a command of a ```sh block names that does not exist, as messages."""
    words = shlex.split(command.split(" #")[0])
    problems = [f"no such file {word}" for word in words
                if PATH_WORD.match(word) and not word.startswith(".venv/") and not (ROOT / word).exists()]
    stage = None
    if "course.py" in words and "run" in words:
        after = words[words.index("run") + 1 :]
        stage = after[0] if after and not after[0].startswith("-") else STAGES[0]
    stage = next((Path(word).parts[0] for word in words if word.endswith("/app.py")), stage)
    if stage is not None and "/small/" in stage:  # a lesson's small program (its path is checked above)
        return problems
    if stage is not None and stage not in STAGES:
        problems.append(f"no stage {stage}")
    elif stage is not None:
        options = getattr(load_stage(stage), "options", None)  # part 1 has none: environment variables
        problems += [f"{stage} has no option {word.split('=')[0]}" for word in words
                     if word.startswith("--") and word != "--help"
                     and (options is None or word[2:].split("=")[0] not in options)]
    return problems


@pytest.mark.parametrize("document", DOCUMENTS)
def test_commands_not_run_name_what_exists(document):
    for block in blocks(document, "sh"):
        for line in block.text.splitlines():
            assert not line.startswith("$ "), f"{block}: no prompts in ```sh; a ```console block is run"
            assert not command_problems(line), f"{block}: `{line}`: {command_problems(line)}"


def test_the_command_check_finds_what_is_missing():
    assert command_problems("python3 course.py run part3_streaming --files_dir=$HOME/Videos") == []
    assert command_problems(".venv/bin/python bench/blocking.py --workers 2") == []
    assert command_problems("python3 course.py run part9") == ["no stage part9"]
    assert command_problems("python part2_thumbnails/app.py --no_such_option=1") == [
        "part2_thumbnails has no option --no_such_option"]
    assert command_problems("PORT=8001 python part1_basic/app.py --port=8001") == [
        "part1_basic has no option --port"]
    assert command_problems(".venv/bin/python bench/nothing.py") == ["no such file bench/nothing.py"]
    assert command_problems("python3 course.py run part1_basic/small/nothing.py") == [
        "no such file part1_basic/small/nothing.py"]


# --- How a lesson is built ---

MERMAID_TYPES = ("flowchart", "graph", "sequenceDiagram", "gantt", "stateDiagram-v2", "block-beta", "erDiagram",
                 "classDiagram", "timeline", "xychart-beta", "packet-beta")


def sections(markdown):
    """{heading: text} for the `## ` sections of a document."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_lesson_opens_with_what_you_will_learn_and_a_diagram(stage):
    markdown = (ROOT / stage / "README.md").read_text()
    headings = list(sections(markdown))
    assert headings and headings[0] == "What you will learn", f"{stage}: the first section says what you will learn"
    bullets = re.findall(r"^- ", sections(markdown)["What you will learn"], re.M)
    assert len(bullets) >= 3, f"{stage}: a few bullets of what you will learn and build"
    diagrams = blocks(f"{stage}/README.md", "mermaid")
    assert diagrams, f"{stage}: a lesson has at least one diagram"
    for diagram in diagrams:
        assert diagram.text.split()[0] in MERMAID_TYPES, f"{diagram}: not a Mermaid diagram type"


def test_the_lesson_closes_with_what_you_built_its_trade_offs_and_the_next_stage(stage):
    markdown = (ROOT / stage / "README.md").read_text()
    found = sections(markdown)
    assert "What you built" in found, f"{stage}: a section 'What you built'"
    assert re.search(r"^\| *choice *\| *what it buys *\| *what it costs *\|", found["What you built"], re.M), (
        f"{stage}: 'What you built' holds a trade-offs table: | choice | what it buys | what it costs |")
    assert "Exercises" in found, f"{stage}: exercises"
    later = STAGES[STAGES.index(stage) + 1 :]
    if later:
        assert f"](../{later[0]}/README.md)" in markdown, f"{stage}: a link to the next stage's lesson"


# A measured figure: a time, a speed, a rate, a ratio, or how much memory grew.
FIGURE = re.compile(
    r"\d[\d.,]*(?:[–-]\d[\d.,]*)? ?(?:ms|MB/s|GB/s|requests/s|a second)\b"
    r"|\b\d+(?:\.\d+)?(?:[–-]\d+(?:\.\d+)?)?[×x](?=[\s,.;)|]|$)"
    r"|\b(?:\d[\d.]*|three|four|five) times (?:faster|slower|better|worse|less|more|its|the|that)\b"
    r"|\btwice (?:that|its|as)\b"
    r"|grew by \+?\d|\+\d[\d.]* MB\b"
)


def paragraphs(markdown):
    """(line, text) of the paragraphs of a document. Code blocks are left out, but a
    table and an ```output block go with the paragraph before them."""
    found, current, fence = [], None, None
    for number, line in enumerate(markdown.splitlines(), 1):
        if fence is not None:  # inside a fenced block
            if line.startswith("```"):
                fence = None
            elif fence == "output" and found:
                found[-1][1].append(line)
        elif line.startswith("```"):
            fence, current = (line[3:].split() or [""])[0], None
        elif not line.strip():
            current = None
        elif current is None and line.startswith("|") and found:
            current = found[-1]
            current[1].append(line)
        elif current is None:
            current = (number, [line])
            found.append(current)
        else:
            current[1].append(line)
    return [(number, "\n".join(lines)) for number, lines in found]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_a_measured_figure_names_the_benchmark_that_prints_it(document):
    markdown = (ROOT / document).read_text()
    for line, paragraph in paragraphs(markdown):
        figure = FIGURE.search(paragraph)
        if figure:
            # Named as bench/NAME.py, or linked to from the document's folder.
            scripts = [ROOT / "bench" / name for name in re.findall(r"bench/(\w+\.py)", paragraph)]
            scripts += [(ROOT / document).parent / link for link in re.findall(r"\]\(([\w./]+\.py)\)", paragraph)
                        if ((ROOT / document).parent / link).resolve().parent == ROOT / "bench"]
            where = f"{document}, the paragraph of line {line}, gives {figure.group(0)!r}"
            assert scripts, f"{where} without naming the bench/ script that prints it"
            for script in scripts:
                assert script.is_file(), f"{where}: there is no {script.relative_to(ROOT)}"


def test_the_figure_check_knows_a_figure():
    for text in ["35 ms", "1.1 to 1.3 times faster", "grew by 93 MB", "16 to 21 times better", "2.16×,",
                 "about twice that in memory", "3.0 GB/s", "+2.6 MB", "691 requests/s"]:
        assert FIGURE.search(text), text
    for text in ["chunks of 255 KiB", "limited to 16 MB", "100 MB by default", "4 GiB", "part 2", "Motor 0.x"]:
        assert not FIGURE.search(text), text


@pytest.mark.runs_on("part4_production")
def test_part_4_names_the_modules_it_keeps_from_part_3_and_those_it_changes(stage):
    text = " ".join((ROOT / stage / "README.md").read_text().split())
    changed, kept = re.search(r"Part 3's (.*?) take part 4's changes; (.*?) are part 3's as they were", text).groups()
    part3 = {path.name: path.read_bytes() for path in (ROOT / "part3_streaming").glob("*.py")}
    same = {name for name, code in part3.items() if (ROOT / stage / name).read_bytes() == code}
    assert set(re.findall(r"`(\w+\.py)`", kept)) == same
    assert set(re.findall(r"`(\w+\.py)`", changed)) == set(part3) - same - {"app.py"}
