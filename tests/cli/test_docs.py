"""The documentation holds together: README.md is a short guide with a "Quick start" section,
every relative Markdown link in README.md and docs/ points at an existing file, and every doc
under docs/ is reachable from README.md. The checkers are plain functions, each also tested
against a broken example so that a check that cannot fail is caught too."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# [text](target) and ![alt](target), target optionally in <...> and followed by a "title"
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\s*\)")
# [label]: target (reference-style definitions)
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)  # http:, https:, mailto:, ...
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def strip_code(text: str) -> str:
    """Markdown without fenced code blocks and inline code spans (their brackets are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def link_targets(text: str) -> list[str]:
    """Every link target of a Markdown text, in order (code excluded)."""
    prose = strip_code(text)
    found = [(m.start(), m.group(1)) for m in INLINE_LINK.finditer(prose)]
    found += [(m.start(), m.group(1)) for m in REFERENCE_LINK.finditer(prose)]
    return [target.strip("<>") for _, target in sorted(found)]


def local_path(target: str) -> str | None:
    """The file part of a relative link target; None for external links and same-file anchors."""
    if EXTERNAL.match(target):
        return None
    path = target.split("#", 1)[0].split("?", 1)[0]
    return path or None


def broken_links(doc: Path) -> list[str]:
    """Relative link targets of `doc` that do not resolve to an existing file or folder. An
    absolute path counts as broken: it would not resolve in another checkout."""
    broken = []
    for target in link_targets(doc.read_text(encoding="utf-8")):
        path = local_path(target)
        if path is not None and (path.startswith("/") or not (doc.parent / path).exists()):
            broken.append(target)
    return broken


def linked_files(doc: Path) -> set[Path]:
    """The existing files `doc` links to by relative links, resolved."""
    files = set()
    for target in link_targets(doc.read_text(encoding="utf-8")):
        path = local_path(target)
        if path is not None and not path.startswith("/") and (doc.parent / path).is_file():
            files.add((doc.parent / path).resolve())
    return files


def section(text: str, title: str) -> str | None:
    """The body of the first heading called `title`, up to the next heading of its level or
    above; None when there is no such heading (headings inside code blocks do not count)."""
    lines = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text).splitlines()
    raw = text.splitlines()
    for i, line in enumerate(lines):
        match = HEADING.match(line)
        if match and match.group(2) == title:
            level = len(match.group(1))
            end = len(lines)
            for j in range(i + 1, len(lines)):
                other = HEADING.match(lines[j])
                if other and len(other.group(1)) <= level:
                    end = j
                    break
            return "\n".join(raw[i + 1:end])
    return None


def markdown_docs() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


# ----------------------------------------------------------------------------- the checks


def test_readme_is_short_and_starts_quickly():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, at most {MAX_README_LINES}"
    quick = section(text, "Quick start")
    assert quick is not None, 'README.md has no "Quick start" section'
    for command in ("make demo", "make test"):
        assert re.search(rf"^\s*{command}\b", quick, re.M), f'"Quick start" does not show `{command}`'


def test_relative_links_resolve():
    docs = [README, *markdown_docs()]
    assert len(docs) > 1, "no docs under docs/"
    broken = {str(doc.relative_to(ROOT)): bad for doc in docs if (bad := broken_links(doc))}
    assert not broken, f"links to missing files: {broken}"


def test_every_doc_is_linked_from_readme():
    linked = linked_files(README)
    unlinked = [str(doc.relative_to(ROOT)) for doc in markdown_docs() if doc.resolve() not in linked]
    assert not unlinked, f"docs not linked from README.md: {unlinked}"


# ----------------------------------------------------------------------------- the checkers can fail


def test_link_finder_finds_links_and_skips_code():
    text = (
        "See [the guide](docs/guide.md#install), ![a chart](img/chart.png \"title\"),\n"
        "[nested [brackets]](<docs/with space.md>) and [site](https://example.org), "
        "[mail](mailto:a@b.c), [here](#anchor).\n"
        "`[not](a-link.md)` and `_base_: [a.yaml, b.yaml]`\n"
        "```bash\necho [x](inside-code.md)\n```\n"
        "[ref]: docs/ref.md\n"
    )
    targets = link_targets(text)
    assert targets == ["docs/guide.md#install", "img/chart.png", "docs/with space.md",
                       "https://example.org", "mailto:a@b.c", "#anchor", "docs/ref.md"]
    assert [local_path(t) for t in targets] == [
        "docs/guide.md", "img/chart.png", "docs/with space.md", None, None, None, "docs/ref.md"]


def test_broken_link_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# there\n")
    doc = tmp_path / "README.md"
    doc.write_text("[ok](docs/there.md#top) [gone](docs/gone.md#top) [abs](/etc/hostname) "
                   "[web](http://example.org/x.md)\n")
    assert broken_links(doc) == ["docs/gone.md#top", "/etc/hostname"]
    assert linked_files(doc) == {(tmp_path / "docs" / "there.md").resolve()}


def test_quick_start_section_is_bounded():
    text = ("# t\n\n## Quick start\n\n```bash\n# not a heading\nmake demo\n```\n\n"
            "## Next\n\nmake test\n")
    quick = section(text, "Quick start")
    assert "make demo" in quick and "make test" not in quick
    assert section(text, "Quickstart") is None
