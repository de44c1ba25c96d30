"""Links of the course's pages (its Markdown files, and the Markdown cells of its
notebooks) that lead nowhere: to no file, or to a heading the file does not have."""

import re
from pathlib import Path

import nbformat


def slug(heading):
    """The anchor a code host gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def page_text(path):
    """A page's Markdown, without its HTML comments (what a reader sees): a Markdown
    file's text, or a notebook's Markdown cells."""
    path = Path(path)
    if path.suffix == ".ipynb":
        cells = nbformat.read(path, as_version=4).cells
        text = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    else:
        text = path.read_text()
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def dead_links(page):
    """What is wrong with the links of `page` (a path) that are not web addresses,
    as messages: [] if each leads to a file that exists, and to a heading of it."""
    page, problems = Path(page), []
    for target in re.findall(r"\]\(([^)\s]+)\)", page_text(page)):
        if re.match(r"\w+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            problems.append(f"{page.name} links {target}, which does not exist")
        elif anchor and linked.is_file():
            headings = {slug(heading) for heading in re.findall(r"^#+ (.+)$", page_text(linked), re.M)}
            if anchor not in headings:
                problems.append(f"{page.name} links {target}: no such heading")
    return problems
