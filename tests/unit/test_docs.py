"""A fresh clone's README → deploy → docs path has no dead reference.

Every relative link in README.md, CHANGELOG.md and docs/*.md points to a file of the repository (and
to a heading there, when it names one); every repository path the docs and deploy files name in
passing exists; nothing refers a reader to a file that is not in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.sandbox.stack import PROJECT_ROOT

ROOT = Path(PROJECT_ROOT)
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
# Files a reader follows without a Markdown link: deploy files and the example configuration.
PLAIN = sorted([*(ROOT / "deploy").iterdir(), ROOT / "config.example.toml", ROOT / ".dockerignore"])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# A repository path named in passing: a top-level folder, then a file name with an extension.
MENTION = re.compile(r"(?<![\w./-])((?:bot|cogs|services|storage|tests|bench|deploy|docs)/[\w./-]*\.\w+)")
OUTSIDE = ("DESIGN.md", "CONVENTIONS.md", "/work/", "shared/")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    found: set[str] = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def prose(page: Path) -> str:
    return page.read_text(encoding="utf-8")


# `doc`, not `page`: pytest-playwright owns a fixture named `page` (and would tie these to a browser).
@pytest.mark.parametrize("doc", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_something(doc: Path) -> None:
    dead = []
    for target in LINK.findall(prose(doc)):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:: outside links are not checked here
            continue
        path_part, _, anchor = target.partition("#")
        destination = (doc.parent / path_part).resolve() if path_part else doc
        exists = destination.exists() and destination.is_relative_to(ROOT)
        if not exists or (anchor and destination.suffix == ".md" and anchor not in anchors(destination)):
            dead.append(target)
    assert not dead, f"{doc.relative_to(ROOT)}: dead links {dead}"


@pytest.mark.parametrize("doc", PAGES + PLAIN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_named_in_passing_exists(doc: Path) -> None:
    missing = [
        path
        for path in MENTION.findall(prose(doc))
        if not any(marker in path for marker in ("NNNN", "…", "*", "<"))
        and not (ROOT / path).exists()
        and not (doc.parent / path).exists()
    ]
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", PAGES + PLAIN, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_points_outside_the_repository(doc: Path) -> None:
    text = prose(doc)
    assert not [marker for marker in OUTSIDE if marker in text]


def test_every_page_of_docs_is_reachable_from_the_readme() -> None:
    reached: set[Path] = set()
    queue = [ROOT / "README.md"]
    while queue:
        page = queue.pop()
        if page in reached or page.suffix != ".md" or not page.exists():
            continue
        reached.add(page)
        for target in LINK.findall(prose(page)):
            if not re.match(r"^[a-z]+:", target) and target.partition("#")[0]:
                queue.append((page.parent / target.partition("#")[0]).resolve())
    unreachable = [p.relative_to(ROOT) for p in (ROOT / "docs").glob("*.md") if p.resolve() not in reached]
    assert not unreachable, f"no link leads from README.md to {unreachable}"


def test_the_checker_finds_dead_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](#nowhere) [file](missing.md)\n", encoding="utf-8")
    assert anchors(page) == {"title"}
    assert LINK.findall(prose(page)) == ["#title", "#nowhere", "missing.md"]
