"""Every command's `--help`: help text on every argument, and the defaults shown (issue 15)."""

from __future__ import annotations

import argparse
import re

import pytest

from tomoseg.cli import build_parser, format_default, shows_default


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command words, parser) of the top-level parser and every sub-command, nested ones included."""
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*prefix, name))
    return found


COMMANDS = _commands(build_parser())
IDS = [" ".join(words) or "tomoseg" for words, _ in COMMANDS]


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a for a in parser._actions if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def test_the_walk_reaches_nested_commands():
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"segment", "baseline membrain", "baseline tardis", "profile install", "pin-runs"} <= names


@pytest.mark.parametrize(("words", "parser"), COMMANDS, ids=IDS)
def test_every_argument_has_help(words, parser):
    missing = [a.option_strings or [a.dest] for a in _arguments(parser) if not (a.help or "").strip()]
    assert not missing, f"tomoseg {' '.join(words)}: arguments without help: {missing}"


@pytest.mark.parametrize(("words", "parser"), COMMANDS, ids=IDS)
def test_help_shows_every_meaningful_default_once(words, parser, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside a long default
    text = " ".join(parser.format_help().split())
    for action in _arguments(parser):
        shown = f"(default: {format_default(action.default)})"
        if shows_default(action):
            assert text.count(shown) >= 1, (
                f"tomoseg {' '.join(words)} {action.option_strings}: {shown} not in help"
            )
        if action.help:
            # a hand-written default beside the generated one would print it twice
            assert not re.search(r"\(default[ :]+%\(default\)s\)", action.help), action.option_strings
        if action.default is None or action.default is False:
            assert "(default: None)" not in text and "(default: False)" not in text


def test_defaults_of_segment_are_shown(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for shown in (
        "(default: auto)",
        "or bfloat16 (default: auto)",  # --dtype
        "(default: paper)",
        "(default: resources/etsam/etsam_stage1_v1.pt)",
        "(default: 8)",
        "(default: 1)",
    ):
        assert shown in out
