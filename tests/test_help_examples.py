"""Help that teaches: every help page ends with examples that name real commands and
options, the scheduled jobs list their exit codes, and every error line ends with what to
do next."""

from __future__ import annotations

import shlex
import socket
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from impromptu_ops import errors
from impromptu_ops.cli import examples, nextsteps
from impromptu_ops.cli.main import cli
from tests.fixtures_jobs import ops

JOBS = ("heartbeat", "rotate impromptu", "earnings reconcile", "health")


def _walk(cmd: click.Command, path: tuple[str, ...] = ()
          ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None
            yield from _walk(sub, (*path, name))


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    cmd: click.Command = cli
    rest = list(words)
    while rest and isinstance(cmd, click.Group):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        if sub is None:
            break
        cmd, rest = sub, rest[1:]
    return cmd, rest


def test_every_help_page_ends_with_examples_of_real_commands() -> None:
    pages = list(_walk(cli))
    assert len(pages) >= 46
    runner = CliRunner()
    for path, cmd in pages:
        result = runner.invoke(cli, [*path, "--help"], prog_name="impromptu-ops")
        assert result.exit_code == 0, (path, result.output)
        tail = result.output.rstrip().split("Examples:")
        assert len(tail) == 2, f"{' '.join(path) or 'impromptu-ops'}: no examples"
        shown = [ln.strip()[2:] for ln in tail[1].splitlines() if ln.strip().startswith("$ ")]
        assert 1 <= len(shown) <= 2, path
        for example in shown:
            words = shlex.split(example.split("|")[0].split("&&")[0].split(">")[0]
                                .split("#")[0])
            assert words[0] in ("impromptu-ops", "sudo", "curl"), example
            if words[0] == "curl":
                continue
            target, rest = _resolve(words[words.index("impromptu-ops") + 1:])
            assert target is cmd or path == () or isinstance(cmd, click.Group), example
            known = {o for p in target.params
                     for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
            for word in rest[:rest.index("--")] if "--" in rest else rest:
                if word.startswith("--"):
                    assert word.split("=")[0] in known, f"{example}: {word} is not an option"


def test_the_jobs_list_their_exit_codes() -> None:
    runner = CliRunner()
    for job in JOBS:
        text = runner.invoke(cli, [*job.split(), "--help"]).output
        assert "Exit codes:" in text, job
        assert text.index("Exit codes:") < text.index("Examples:")
    assert "75 skipped" in runner.invoke(cli, ["heartbeat", "--help"]).output
    assert "3 could not check" in runner.invoke(cli, ["earnings", "reconcile", "--help"]).output


def test_examples_table_names_only_existing_commands() -> None:
    real = {" ".join(p) for p, _ in _walk(cli)}
    assert set(examples.EXAMPLES) <= real
    assert set(examples.EXIT_CODES) <= real


def _all_errors(cls: type[errors.OpsError]) -> Iterator[type[errors.OpsError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _all_errors(sub)


# Interrupted: the person stopped the command; the line says so and needs no next step.
ERROR_CLASSES: list[type[errors.OpsError]] = sorted(
    set(_all_errors(errors.OpsError)) - {errors.Interrupted}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", ERROR_CLASSES)
def test_every_error_class_ends_with_a_next_step(cls: type[errors.OpsError]) -> None:
    def make(hint: str | None) -> errors.OpsError:
        if issubclass(cls, errors.PlatformError):
            return cls("something failed", code="X_001", status=400, hint=hint)
        exc = cls.__new__(cls)
        errors.OpsError.__init__(exc, "something failed", hint=hint)
        return exc

    line = nextsteps.line(make(None), "impromptu-ops x")
    assert "(next: " in line and line.endswith(")"), cls
    assert "(next: " not in nextsteps.line(make("chmod 600 f"))  # its own hint wins


def test_the_errors_users_hit_most_say_what_to_do() -> None:
    missing = ops("secrets", "get", "openrouter-api-key")
    assert missing.returncode == 1
    assert "secrets put NAME" in missing.stderr and missing.stderr.count("\n") == 1
    with socket.socket() as s:  # a port nothing listens on: the platform is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = ops("update", "fetch", env={"IMPROMPTU_API_URL": f"http://127.0.0.1:{port}"})
    assert down.returncode == 69
    assert "the server did not answer" in down.stderr
    assert "run `impromptu-ops update fetch` again" in down.stderr
    nokey = ops("heartbeat")
    assert nokey.returncode == 1
    assert "impromptu-ops register" in nokey.stdout and "secrets put" in nokey.stdout
