import pytest

import tomoseg.cli

MY_COMMANDS = ("tomoseg.commands.postprocess", "tomoseg.commands.evaluate", "tomoseg.commands.stats")


@pytest.fixture
def cli_main(monkeypatch):
    """tomoseg.cli.main with only the evaluation commands registered (other modules land on other branches)."""
    monkeypatch.setattr(tomoseg.cli, "COMMAND_MODULES", MY_COMMANDS)
    return tomoseg.cli.main
