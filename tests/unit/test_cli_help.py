"""Every ``hub`` command documents itself: each option and subcommand has a help text, each
command ends its ``-h`` with an example, ``--version`` answers, and usage errors with
``--json`` are JSON like every other error."""

from __future__ import annotations

import argparse
import json

import pytest

from hub.client import cli

pytestmark = pytest.mark.unit


def _commands(parser: argparse.ArgumentParser, path: str = "hub"):
    """(path, parser) for ``parser`` and every subcommand below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, f"{path} {name}")


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    return {
        choice.dest: choice.help
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    }


COMMANDS = list(_commands(cli.build_parser()))


def test_the_walk_finds_every_command():
    paths = {p for p, _ in COMMANDS}
    assert {
        "hub login",
        "hub push",
        "hub repo create",
        "hub jobs logs",
        "hub admin list-users",
    } <= paths
    assert len(paths) > 40


@pytest.mark.parametrize("path,parser", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_and_subcommand_has_help(path, parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            missing = [name for name, h in _subcommand_help(parser).items() if not h]
            assert not missing, f"{path}: subcommands without help: {missing}"
            continue
        assert action.help and action.help != argparse.SUPPRESS, (
            f"{path}: {action.option_strings or action.dest} has no help text"
        )


@pytest.mark.parametrize("path,parser", COMMANDS[1:], ids=[p for p, _ in COMMANDS[1:]])
def test_every_command_ends_its_help_with_an_example(path, parser):
    assert parser.description, f"{path}: -h does not say what the command does"
    assert parser.epilog and parser.epilog.startswith(("example:", "examples:")), path
    examples = [ln.strip() for ln in parser.epilog.splitlines()[1:] if ln.strip()]
    assert examples and all(ln.startswith(("hub ", "echo ")) for ln in examples), parser.epilog
    # the example is this command's (a group shows its subcommands')
    assert any(path in ln for ln in examples), (path, examples)
    # kept as written: one example per line, not re-wrapped
    assert isinstance(parser.formatter_class, type) and issubclass(
        parser.formatter_class, argparse.RawDescriptionHelpFormatter
    )
    assert parser.format_help().rstrip().endswith(examples[-1])


@pytest.mark.parametrize("path,parser", COMMANDS[1:], ids=[p for p, _ in COMMANDS[1:]])
def test_every_example_parses(path, parser):
    """An example that no longer matches the command's options would mislead."""
    import shlex

    for line in parser.epilog.splitlines()[1:]:
        line = line.strip()
        if not line.startswith("hub "):
            line = line.split("| ", 1)[-1]  # echo "$TOKEN" | hub login ...
        words = shlex.split(line.split(" | ")[0])[1:]
        cli.build_parser().parse_args(words)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("hub ") and out.split()[1][0].isdigit()


def test_usage_errors_are_json_with_json(capsys):
    assert cli.main(["repo", "create", "--json"]) == cli.EXIT_USAGE
    err = json.loads(capsys.readouterr().err)
    assert err["error"]["code"] == "usage" and "repo" in err["error"]["message"]
    assert cli.main(["runs", "compare", "abc123", "alice/moe@top2", "--json"]) == 2
    err = json.loads(capsys.readouterr().err)
    assert err == {
        "error": {
            "code": "invalid_input",
            "message": "compare either run ids or model commits (ns/repo@ref), not a mix",
        }
    }


def test_usage_errors_stay_text_without_json(capsys):
    assert cli.main(["repo", "create"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: hub repo create") and "error: the following arguments" in err


def test_a_bug_is_json_with_json_and_a_traceback_without(monkeypatch, capsys):
    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(cli, "_client", boom)
    assert cli.main(["whoami", "--json"]) == cli.EXIT_ERROR
    assert json.loads(capsys.readouterr().err)["error"] == {
        "code": "internal_error",
        "message": "KeyError: 'surprise'",
    }
    with pytest.raises(KeyError):
        cli.main(["whoami"])


def test_a_missing_extra_is_a_json_error_with_json(monkeypatch, capsys):
    def needs_server(args):
        cli._require_server("hub whoami")

    monkeypatch.setattr(cli, "_client", needs_server)
    monkeypatch.setattr(cli, "SERVER_MODULES", ("no_such_module_for_this_test",))
    assert cli.main(["whoami", "--json"]) == cli.EXIT_ERROR
    err = json.loads(capsys.readouterr().err)["error"]
    assert err["code"] == "missing_extra"
    assert "no_such_module_for_this_test" in err["message"]
    assert err["message"].endswith("pip install 'moe-hub[server]'")
