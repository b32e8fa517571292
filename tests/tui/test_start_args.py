"""`lap-tui --session ID` opens the app without building any subcommand's parser (each imports
its module: the ID was taken for a command name and every one was built, ~100 ms of start-up)."""

from __future__ import annotations

import pytest

import lap_tui.cli.main as cli_main


@pytest.mark.parametrize("argv", [["--session", "0cd25046"], ["--view", "sessions"], ["--context", "kind", "--session", "x"],
                                  ["--read-only", "--session", "x"]])
def test_opening_the_app_builds_no_subcommand(monkeypatch, argv) -> None:
    built, launched = [], []
    real = cli_main.build_parser
    monkeypatch.setattr(cli_main, "build_parser", lambda only=None: built.append(only) or real(only))
    monkeypatch.setattr("lap_tui.tui.launch.launch", lambda **kw: launched.append(kw) or 0)
    monkeypatch.delenv("LAP_KUBE_CONTEXT", raising=False)
    assert cli_main.main(argv) == 0
    assert built == [""], "a subcommand's parser (and its module) was built to open the app"
    assert launched and launched[0]["session"] == (argv[-1] if "--session" in argv else None)


def test_a_subcommand_is_still_found_after_the_app_options() -> None:
    assert cli_main._words(["--context", "kind", "sessions", "list"]) == ["sessions", "list"]
