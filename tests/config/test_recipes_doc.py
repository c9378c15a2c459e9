"""docs/recipes.md's key reference holds to the schema: every leaf key of the composed recipe
(the core sections and every built-in method's) is documented, every documented key exists,
and every documented default is the schema's.

The reference is the Markdown tables under its "## Key reference" heading. A row is
`| `key` | `default` | what it does |`: the key in a code span, the default a code span holding
its YAML value. A key column may be a pattern, segment by segment: `*` is any one segment,
`{a,b}` one of the names listed, anything else itself; a pattern has as many segments as the
keys it stands for (`*.train.lr` is `cam.train.lr`, `seg.train.lr`, ...). A key is documented by
its own row if it has one, else by the one pattern row that matches it; the default of that row
must be the key's. So a section whose default differs from a pattern row's (`affinity.train.epochs`
is 8, `*.train.epochs` 15) needs its own row, and the check stays exact.

The checker is plain functions, each also run on broken examples so that a check that cannot
fail is caught too.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any

import yaml

from psa.framework.recipes import default_recipe

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "recipes.md"
HEADING = "## Key reference"

CODE = re.compile(r"`([^`]*)`")
SEGMENT = re.compile(r"^(?:[a-z0-9_]+|\*|\{[a-z0-9_]+(?:,[a-z0-9_]+)+\})$")
HEADER = ["key", "default", "what it does"]


# ----------------------------------------------------------------------------- the schema


def _section_type(hint) -> type | None:
    """The dataclass a field holds, directly or as Optional[...]; None for a leaf."""
    if dataclasses.is_dataclass(hint):
        return hint
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if len(args) == 1 and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def schema_defaults(recipe) -> dict[str, Any]:
    """{dotted leaf key: default} of every field of every section, recursively. A section that
    is unset by default (`mask_crf: null`) contributes its class's defaults, the values its keys
    take once the section is set."""
    found: dict[str, Any] = {}

    def walk(cls: type, obj: Any, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            value = getattr(obj, f.name)
            section = _section_type(hints[f.name])
            if section is not None:
                walk(section if value is None else type(value), section() if value is None else value, f"{key}.")
            else:
                found[key] = value

    walk(type(recipe), recipe, "")
    return found


# ----------------------------------------------------------------------------- the doc


def reference_section(text: str) -> str:
    """The body of the "## Key reference" heading, up to the next heading of level 1 or 2."""
    lines = text.splitlines()
    start = lines.index(HEADING) + 1  # ValueError: no reference at all
    end = next((i for i in range(start, len(lines)) if re.match(r"#{1,2} ", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def reference_rows(text: str) -> tuple[dict[str, str], list[str]]:
    """({key or pattern: its default cell}, problems) of the tables in the reference section of
    a Markdown text."""
    rows: dict[str, str] = {}
    problems: list[str] = []
    for line in reference_section(text).splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells == HEADER or all(set(cell) <= set("-: ") for cell in cells):
            continue
        if len(cells) != 3:
            problems.append(f"row with {len(cells)} cells, not 3 (a '|' in a description?): {line}")
            continue
        match = re.fullmatch(CODE, cells[0])
        if match is None or not all(SEGMENT.match(part) for part in match[1].split(".")):
            problems.append(f"row whose first cell is not a key in a code span: {line}")
            continue
        key = match[1]
        if key in rows:
            problems.append(f"{key}: documented twice")
        rows[key] = cells[1]
    return rows, problems


def is_pattern(key: str) -> bool:
    return "*" in key or "{" in key


def matches(pattern: str, key: str) -> bool:
    """`*` is any one segment, `{a,b}` one of a and b; the same number of segments."""
    parts, names = pattern.split("."), key.split(".")
    if len(parts) != len(names):
        return False
    for part, name in zip(parts, names):
        if part == "*":
            continue
        if part.startswith("{"):
            if name not in part[1:-1].split(","):
                return False
        elif part != name:
            return False
    return True


def parse_default(cell: str, like: Any) -> tuple[bool, Any]:
    """(parsed, value) of a default cell: one code span holding a YAML value. A string where
    the schema has a float is read as a float, as the loader does (YAML reads `5e-4` as a string)."""
    match = re.fullmatch(CODE, cell)
    if match is None:
        return False, None
    try:
        value = yaml.safe_load(match[1])
    except yaml.YAMLError:
        return False, None
    if isinstance(value, str) and isinstance(like, float):
        try:
            value = float(value)
        except ValueError:
            pass
    return True, value


def same(documented: Any, default: Any) -> bool:
    if isinstance(documented, bool) or isinstance(default, bool):
        return documented is default
    if isinstance(documented, (int, float)) and isinstance(default, (int, float)):
        return math.isclose(documented, default, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(documented, list) and isinstance(default, list):
        return len(documented) == len(default) and all(same(a, b) for a, b in zip(documented, default))
    return type(documented) is type(default) and documented == default


def check(rows: dict[str, str], defaults: dict[str, Any]) -> list[str]:
    """Every problem of a reference (`rows`: key or pattern -> default cell) against the schema's
    `defaults`: undocumented keys, documented keys or patterns the schema lacks, keys two
    patterns claim, defaults unreadable or other than the schema's."""
    problems = []
    patterns = [key for key in rows if is_pattern(key)]
    for key in rows:
        if is_pattern(key):
            if not any(matches(key, name) for name in defaults):
                problems.append(f"{key}: documented, but the schema has no key it matches")
        elif key not in defaults:
            problems.append(f"{key}: documented, but not in the schema (renamed or removed?)")
    for key, default in defaults.items():
        if key in rows:
            row = key
        else:
            claimed = [pattern for pattern in patterns if matches(pattern, key)]
            if not claimed:
                problems.append(f"{key}: not documented")
                continue
            if len(claimed) > 1:
                problems.append(f"{key}: matched by several rows {claimed}; give it its own row")
                continue
            row = claimed[0]
        parsed, documented = parse_default(rows[row], default)
        if not parsed:
            problems.append(f"{key}: the default {rows[row]!r} of row {row} is not one YAML value in a code span")
        elif not same(documented, default):
            via = "" if row == key else f" (row {row}; give {key} its own row)"
            problems.append(f"{key}: documented default {rows[row]}{via}, the schema's is {default!r}")
    return problems


# ----------------------------------------------------------------------------- the checks


def loaded_rows(rows: dict[str, str], defaults: dict[str, Any]) -> dict[str, str]:
    """The rows of sections the loaded methods have: a method's folder deleted, its rows are
    not the schema's to check (patterns stay: they name sections of several methods)."""
    sections = {key.split(".")[0] for key in defaults}
    return {key: default for key, default in rows.items() if is_pattern(key) or key.split(".")[0] in sections}


def test_every_key_is_documented_with_its_default():
    defaults = schema_defaults(default_recipe())
    rows, problems = reference_rows(DOC.read_text(encoding="utf-8"))
    problems += check(loaded_rows(rows, defaults), defaults)
    assert not problems, "docs/recipes.md's key reference against the schema:\n" + "\n".join(problems)


def test_the_walk_reaches_every_kind_of_section():
    defaults = schema_defaults(default_recipe())
    assert defaults["task"] == "cam" and defaults["methods"] == []
    assert defaults["data.coco.order"] == "area"  # a section inside a section
    assert defaults["cam.fixmatch.mu"] == 7  # a method's section inside another method's
    assert defaults["affinity.train.epochs"] == 8  # a shared section with the method's default
    assert defaults["mask_crf.bilateral_compat"] == 10.0  # unset by default: its class's defaults
    assert defaults["run.mixed_precision"] is None  # an Optional leaf stays a leaf
    assert not any(isinstance(value, dict) or dataclasses.is_dataclass(value) for value in defaults.values())


# ----------------------------------------------------------------------------- the checker can fail


DEFAULTS = {
    "run.seed": 0, "run.dir": "runs/default", "crf.iterations": 10, "crf.bilateral_compat": 10.0,
    "cam.train.lr": 0.01, "seg.train.lr": 0.001, "cam.train.weight_decay": 5e-4, "seg.train.weight_decay": 5e-4,
    "seg.head": "aspp", "cps.head": "aspp", "cam.flip": True, "cam.scales": [1.0, 0.5], "pipeline.steps": None,
}
GOOD = {
    "run.seed": "`0`", "run.dir": "`runs/default`", "crf.iterations": "`10`", "crf.bilateral_compat": "`10.0`",
    "*.train.lr": "`0.01`", "seg.train.lr": "`0.001`", "*.train.weight_decay": "`5e-4`", "{seg,cps}.head": "`aspp`",
    "cam.flip": "`true`", "cam.scales": "`[1, 0.5]`", "pipeline.steps": "`null`",
}


def test_a_complete_reference_passes():
    assert check(GOOD, DEFAULTS) == []


def test_a_missing_key_is_reported():
    rows = {k: v for k, v in GOOD.items() if k != "crf.iterations"}
    assert check(rows, DEFAULTS) == ["crf.iterations: not documented"]


def test_a_key_the_schema_lacks_is_reported():
    rows = {**GOOD, "crf.iteration": "`10`", "*.train.lrr": "`0.1`"}
    problems = check(rows, DEFAULTS)
    assert problems == ["crf.iteration: documented, but not in the schema (renamed or removed?)",
                        "*.train.lrr: documented, but the schema has no key it matches"]


def test_a_wrong_default_is_reported():
    for key, cell in [("run.seed", "`1`"), ("cam.flip", "`false`"), ("cam.scales", "`[1, 0.75]`"),
                      ("run.dir", "`runs/other`"), ("pipeline.steps", "`[]`"), ("crf.bilateral_compat", "`3`")]:
        problems = check({**GOOD, key: cell}, DEFAULTS)
        assert len(problems) == 1 and problems[0].startswith(f"{key}: documented default {cell}"), (key, problems)


def test_a_default_that_is_not_a_code_span_is_reported():
    problems = check({**GOOD, "run.seed": "0 (the seed)"}, DEFAULTS)
    assert problems == ["run.seed: the default '0 (the seed)' of row run.seed is not one YAML value in a code span"]


def test_a_pattern_row_needs_the_sections_whose_default_differs():
    rows = {k: v for k, v in GOOD.items() if k != "seg.train.lr"}
    problems = check(rows, DEFAULTS)
    assert problems == ["seg.train.lr: documented default `0.01` (row *.train.lr; give seg.train.lr its own row), "
                        "the schema's is 0.001"]


def test_two_patterns_claiming_one_key_are_reported():
    rows = {**{k: v for k, v in GOOD.items() if k != "seg.train.lr"}, "seg.*.lr": "`0.001`"}
    assert check(rows, DEFAULTS) == ["seg.train.lr: matched by several rows ['*.train.lr', 'seg.*.lr']; "
                                     "give it its own row"]
    assert check({**rows, "seg.train.lr": "`0.001`"}, DEFAULTS) == []  # its own row decides


def test_patterns_match_whole_segments():
    assert matches("*.train.lr", "cam.train.lr") and not matches("*.train.lr", "cam.fixmatch.train.lr")
    assert matches("{seg,cps}.head", "cps.head") and not matches("{seg,cps}.head", "cam.head")
    assert not matches("*.train", "cam.train.lr") and not matches("cam.train.l", "cam.train.lr")


def test_rows_are_read_from_the_reference_section_only():
    text = ("# Recipes\n\n| recipe | what |\n|---|---|\n| `recipes/demo.yaml` | the demo |\n\n"
            "## Key reference\n\nProse with `run.seed`.\n\n### `run`\n\n"
            "| key | default | what it does |\n|---|---|---|\n"
            "| `run.seed` | `0` | Seed. |\n| `run.dir` | `runs/x` | The run | folder. |\n"
            "| run.deterministic | `false` | Not a code span. |\n| `run.seed` | `1` | Again. |\n\n"
            "## Next\n\n| key | default | what it does |\n|---|---|---|\n| `after.the_section` | `1` | Not read. |\n")
    rows, problems = reference_rows(text)
    assert rows == {"run.seed": "`1`"}
    assert [p.split(":")[0] for p in problems] == ["row with 4 cells, not 3 (a '|' in a description?)",
                                                  "row whose first cell is not a key in a code span",
                                                  "run.seed"]
