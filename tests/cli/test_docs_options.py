"""The documentation and the command line agree (issue 15).

* Option tables: a Markdown table whose header's first cell is "option", preceded by a marker line
  `<!-- options: tomoseg COMMAND -->`, documents that command's options: every `--flag` in a row's first
  cell exists on the command, and the documented default (second cell) is argparse's default (or, for an
  option a preset decides, the paper preset's value). The main commands document every option.
* Command lines: every `--flag` written after `tomoseg COMMAND` in a code block or a code span exists on
  that command.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from tomoseg.cli import build_parser, format_default

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*options:\s*tomoseg\s+([\w -]+?)\s*-->")
FLAG = re.compile(r"--[a-z0-9][\w-]*")
# Commands whose every option is in an option table.
FULLY_DOCUMENTED = ("segment", "evaluate", "threshold")


def _parsers(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[str, argparse.ArgumentParser]:
    found = {" ".join(prefix): parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.update(_parsers(child, (*prefix, name)))
    return found


PARSERS = _parsers(build_parser())


def _options(command: str) -> dict[str, argparse.Action]:
    return {s: a for a in PARSERS[command]._actions for s in a.option_strings if s.startswith("--")}


def _preset_defaults(command: str) -> dict[str, object]:
    """Values the paper preset gives to options whose argparse default is None (they defer to the preset)."""
    if command == "segment":
        from tomoseg.cli.engine_args import settings_from

        settings = settings_from(build_parser().parse_args(["segment", "t.mrc", "--out", "o"]))
        return {**settings["etsam"], "normalization": settings["normalization"]}
    return {}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def option_tables(text: str) -> list[tuple[str | None, int, list[list[str]]]]:
    """(command from the marker or None, line number, rows) of every table whose header starts with "option"."""
    lines = text.splitlines()
    tables = []
    i = 0
    while i < len(lines):
        if (
            lines[i].startswith("|")
            and i + 1 < len(lines)
            and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip())
        ):
            start = i
            header = _cells(lines[i])
            i += 2
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            if header[0].lower() == "option":
                before = [ln for ln in lines[max(0, start - 2) : start] if ln.strip()]
                marker = MARKER.search(before[-1]) if before else None
                tables.append((marker.group(1).strip() if marker else None, start + 1, rows))
        else:
            i += 1
    return tables


def _documented_defaults(first: str, second: str) -> list[tuple[str, str]]:
    """(flag, documented default) for each flag of a row; one default for all, or one per flag."""
    flags = FLAG.findall(first)
    values = [v.strip() for v in re.split(r"\s+/\s+|,\s+", second)]
    if len(values) != len(flags):
        values = [second.strip()] * len(flags)
    return list(zip(flags, values, strict=True))


def _clean(value: str) -> str:
    return re.sub(r"\([^)]*\)", "", value).replace("`", "").strip()


def _agrees(documented: str, action: argparse.Action, preset: dict[str, object]) -> str | None:
    """None when the documented default is argparse's (or the preset's), else what argparse has."""
    value = _clean(documented)
    if value == "required":
        return None if action.required else "not required"
    if action.required:
        return "required"
    default = action.default
    if default is None and action.dest in preset:
        default = preset[action.dest]
    if value == "off":
        return None if default in (False, None) else repr(default)
    if value == "none":
        return None if default in (None, [], ()) else repr(default)
    if default is None or default == []:
        return None  # described in words (what happens when the option is left out)
    if isinstance(default, list | tuple):
        return None if _same(value.split(), [str(d) for d in default]) else format_default(default)
    return None if _same([value], [str(default)]) else repr(default)


def _same(documented: list[str], actual: list[str]) -> bool:
    """Equal as numbers where both are numbers, else as text."""
    if len(documented) != len(actual):
        return False
    for d, a in zip(documented, actual, strict=True):
        try:
            if float(d) != float(a):
                return False
        except ValueError:
            if d != a:
                return False
    return True


TABLES = [
    (doc, command, line, rows)
    for doc in DOCUMENTS
    for command, line, rows in option_tables(doc.read_text())
    if any(FLAG.match(r[0].strip("`")) for r in rows)
]


def test_option_tables_are_found():
    assert {command for _, command, _, _ in TABLES} >= set(FULLY_DOCUMENTED)


@pytest.mark.parametrize(
    ("doc", "command", "line", "rows"), TABLES, ids=[f"{d.name}:{n}" for d, _, n, _ in TABLES]
)
def test_documented_options_exist_with_their_defaults(doc, command, line, rows):
    where = f"{doc.relative_to(REPO)}:{line}"
    assert command is not None, f"{where}: an option table needs a `<!-- options: tomoseg COMMAND -->` line"
    assert command in PARSERS, f"{where}: no command tomoseg {command}"
    options, preset = _options(command), _preset_defaults(command)
    wrong = []
    for row in rows:
        for flag, documented in _documented_defaults(row[0], row[1]):
            if flag not in options:
                wrong.append(f"{flag}: no such option of tomoseg {command}")
            elif (actual := _agrees(documented, options[flag], preset)) is not None:
                wrong.append(f"{flag}: documented default {documented!r}, argparse has {actual}")
    assert not wrong, f"{where}: " + "; ".join(wrong)


@pytest.mark.parametrize("command", FULLY_DOCUMENTED)
def test_main_commands_document_every_option(command):
    documented = {
        flag for _, c, _, rows in TABLES if c == command for row in rows for flag in FLAG.findall(row[0])
    }
    missing = sorted(set(_options(command)) - documented - {"--help"})
    assert not missing, f"tomoseg {command}: options missing from its option table: {missing}"


def _command_lines(text: str) -> list[str]:
    """Every `tomoseg ...` command line in code blocks and code spans (continuation lines joined)."""
    found = []
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    for block in blocks:
        found += re.findall(r"(?m)^\s*(tomoseg\s.*)$", block.replace("\\\n", " "))
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    found += re.findall(r"`(tomoseg\s[^`]*)`", outside)
    return found


def _check_line(line: str) -> str | None:
    line = re.split(r"\s#|\s\|\s|&&|;", line)[0]
    try:
        words = shlex.split(line.replace("[", " ").replace("]", " "))
    except ValueError:
        words = line.split()
    command: list[str] = []
    parser = PARSERS[""]
    for word in words[1:]:
        children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if children and word in children[0].choices:
            command.append(word)
            parser = children[0].choices[word]
        elif not word.startswith("-"):
            continue
        else:
            break
    known = {s for a in parser._actions for s in a.option_strings}
    known |= {s for a in PARSERS[""]._actions for s in a.option_strings}
    unknown = [
        w.split("=")[0] for w in words if FLAG.fullmatch(w.split("=")[0]) and w.split("=")[0] not in known
    ]
    return f"tomoseg {' '.join(command)}: {unknown} in {line!r}" if unknown else None


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_command_lines_in_the_docs_use_real_options(doc):
    wrong = [msg for line in _command_lines(doc.read_text()) if (msg := _check_line(line))]
    assert not wrong, f"{doc.relative_to(REPO)}: " + "; ".join(wrong)


def test_a_wrong_default_is_caught():
    rows = option_tables(
        "<!-- options: tomoseg segment -->\n| option | default | meaning |\n|---|---|---|\n| `--device` | `cpu` | x |\n"
    )
    (command, _, [row]) = rows[0]
    (flag, documented) = _documented_defaults(row[0], row[1])[0]
    assert command == "segment" and _agrees(documented, _options("segment")[flag], {}) == "'auto'"
