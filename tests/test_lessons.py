"""The lessons tell the truth: code a lesson quotes is the stage's code.

In a lesson README, every ```python block is an excerpt
of the stage's app.py.
A line holding only `...` (indented or not) marks code left out; each run of lines
between such marks must appear in app.py exactly, and in the order quoted."""

import asyncio
import doctest
import re

import pytest

from support import ROOT, STAGES, image_bytes

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def excerpts(block):
    """The runs of quoted lines between the `...` marks of a code block."""
    runs = re.split(r"^[ \t]*\.\.\.[ \t]*\n", block, flags=re.M)
    return [run.strip("\n") for run in runs if run.strip()]


def python_blocks(stage, lesson="README.md"):
    return PYTHON_BLOCK.findall((ROOT / stage / lesson).read_text())




@pytest.mark.parametrize("stage", STAGES)
def test_the_lesson_quotes_code(stage):
    assert len(python_blocks(stage)) >= 3, "a lesson walks through its code"


@pytest.mark.parametrize("stage", STAGES)
def test_code_quoted_in_the_lesson_is_the_stages_code(stage, lesson="README.md"):
    code = (ROOT / stage / "app.py").read_text()
    for block in python_blocks(stage, lesson):
        position = 0
        for run in excerpts(block):
            found = code.find(run, position)
            assert found >= 0, f"{stage}/{lesson} quotes code that is not in app.py (or not in this order):\n{run}"
            position = found + len(run)


def test_excerpts_split_at_ellipsis_lines():
    block = "def f():\n    a = 1\n    ...\n    return a\n"
    assert excerpts(block) == ["def f():\n    a = 1", "    return a"]


# --- The lesson's "try it" commands work as written ---

CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
PYCON_BLOCK = re.compile(r"^```pycon\n(.*?)^```", re.M | re.S)
LESSON_ADDRESS = "http://localhost:8000"
MARK = "#-- status"


def shell_session(markdown):
    """[(command, expected output)] for the `$ ` lines of the ```console blocks."""
    session = []
    for block in CONSOLE_BLOCK.findall(markdown):
        for line in block.splitlines():
            if line.startswith("$ "):
                session.append((line[2:], []))
            elif session and block.lstrip().startswith("$ "):
                session[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in session]


async def test_the_lessons_shell_commands_work_as_written(stage, client, tmp_path, mongodb_uri, db_name):
    markdown = (ROOT / stage / "README.md").read_text()
    session = shell_session(markdown)
    assert session, "a lesson gives commands to try"
    (tmp_path / "photo.png").write_bytes(image_bytes(size=(300, 200), color="teal"))
    script = "".join(f"{command}\necho '{MARK}' $?\n" for command, _ in session)
    script = script.replace(LESSON_ADDRESS, client.base_url)
    # The stage is served by this test's event loop: wait for bash without blocking it.
    bash = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    stdout, _ = await bash.communicate()
    # [output, status, output, status, ..., ""]: one output and status per command
    parts = re.split(rf"^{MARK} (\d+)\n", stdout.decode(), flags=re.M)
    assert len(parts) == 2 * len(session) + 1, stdout.decode()
    for (command, expected), output, status in zip(session, parts[0::2], parts[1::2]):
        assert status == "0", f"`{command}` failed:\n{output}"
        assert output.rstrip("\n") == expected.replace(LESSON_ADDRESS, client.base_url), command

    for block in PYCON_BLOCK.findall(markdown):
        # The lesson's database is the stage's default, named after it; the test's is its own.
        block = block.replace("mongodb://localhost:27017", mongodb_uri).replace(f".{stage}\n", f".{db_name}\n")
        test = doctest.DocTestParser().get_doctest(block, {}, f"{stage}/README.md", None, 0)
        runner = doctest.DocTestRunner()
        await asyncio.to_thread(runner.run, test)
        assert runner.summarize(verbose=False).failed == 0
