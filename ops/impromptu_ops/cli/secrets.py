"""``impromptu-ops secrets``: put, get, list, history, rollback, exec, import, scan, check.

Thin: each command parses, opens the store (``--backend local|vault``; default vault when
``VAULT_ADDR`` or the config names a Vault, else the local encrypted store), calls one
library function (:mod:`impromptu_ops.store.manage`, :mod:`impromptu_ops.store.childenv`,
:mod:`impromptu_ops.secretscan`) and renders. Values never come from argv: ``put`` reads
stdin or a hidden prompt. ``get`` masks unless ``--reveal``, which refuses a non-terminal
stdout unless ``--force``: that is the one place a value is printed unmasked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from impromptu_ops import contract
from impromptu_ops.cli.app import App, agent_name, pass_app
from impromptu_ops.cli.output import err, out, out_json, stdout_is_tty, table
from impromptu_ops.errors import InputError, PolicyDenied
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore

F = TypeVar("F", bound=Callable[..., Any])
MAX_STDIN = 64 * 1024


def backend_option(fn: F) -> F:
    fn = click.option("--agent", default=None, callback=agent_name, metavar="NAME",
                      help="Agent whose secrets to use (an alias of the global --agent).")(fn)
    return click.option(
        "--backend", type=click.Choice(["local", "vault"]), default=None,
        help="Secret store (default: vault when VAULT_ADDR or the config names one, "
             "else the local encrypted store).")(fn)


def _store(app: App, backend: str | None, agent: str | None) -> SecretStore:
    from impromptu_ops.api import Agent
    from impromptu_ops.store.local import kdf_of

    settings = app.settings(store__backend=backend, store__agent=agent)
    if (settings.store_backend == "local" and settings.store.passphrase is None
            and sys.stdin.isatty() and kdf_of(settings.local_store_path) == "scrypt"):
        phrase = click.prompt("passphrase of the local secret store", hide_input=True,
                              err=True)
        settings = app.settings(store__backend=backend, store__agent=agent,
                                store__passphrase=Secret(phrase, "store-passphrase"))
    return Agent.from_settings(settings).store


@click.group("secrets")
def secrets() -> None:
    """Keep the platform, OpenRouter and wallet keys in Vault or the encrypted local store."""


@secrets.command("put")
@click.argument("name")
@click.option("--force", is_flag=True, help="Store a value that does not look like NAME.")
@backend_option
@pass_app
def put_cmd(app: App, name: str, force: bool, backend: str | None, agent: str | None) -> None:
    """Store a new version of NAME, read from stdin or a hidden prompt (never argv)."""
    from impromptu_ops.store import manage

    manage.canonical(name)
    stdin = sys.stdin
    if stdin.isatty():
        raw = click.prompt(f"value for {name}", hide_input=True, confirmation_prompt=True,
                           err=True)
    else:
        raw = read_stdin_value(stdin)
    store = _store(app, backend, agent)
    version = manage.put(store, name, Secret(raw, name), force=force)
    out(f"stored {name} version {version} in {store.description}")


def read_stdin_value(stdin: Any) -> str:
    """One secret value from a pipe: UTF-8 text without control characters, at most
    :data:`MAX_STDIN` bytes, one trailing newline dropped.

    Raises:
        InputError: too large, not UTF-8, or holding control characters (a value with a
            NUL or a line break cannot be put into an environment or a header safely).
    """
    source = getattr(stdin, "buffer", None)
    data: bytes | str = (source.read(MAX_STDIN + 1) if source is not None
                         else stdin.read(MAX_STDIN + 1))
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if len(data) > MAX_STDIN:
        raise InputError(f"the value on stdin is too large (over {MAX_STDIN} bytes)")
    try:
        text: str = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"the value on stdin is not UTF-8 text (byte {exc.start}); "
                         "nothing was stored") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise InputError("the value on stdin holds control characters (a NUL, a line "
                         "break, an escape); nothing was stored")
    if not text:
        raise InputError("the value on stdin is empty; nothing was stored")
    return text


def print_revealed_secret(value: Secret) -> None:
    """The single unmasked print of the CLI (``get --reveal``); everything else redacts."""
    sys.stdout.write(value.reveal() + "\n")
    sys.stdout.flush()


@secrets.command("get")
@click.argument("name")
@click.option("--version", "version", type=int, default=None, help="A specific version.")
@click.option("--reveal", is_flag=True, help="Print the value itself (terminal only).")
@click.option("--force", is_flag=True, help="With --reveal: allow a pipe or file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (value masked).")
@backend_option
@pass_app
def get_cmd(app: App, name: str, version: int | None, reveal: bool, force: bool,
            as_json: bool, backend: str | None, agent: str | None) -> None:
    """Show NAME, masked unless --reveal."""
    from impromptu_ops.store import manage

    manage.canonical(name)
    if reveal and not force and not stdout_is_tty():
        raise PolicyDenied("refusing to reveal a secret into a pipe or file",
                           hint="use `secrets exec` to hand it to a program, or --force")
    got = _store(app, backend, agent).read(name, version)
    if reveal:
        print_revealed_secret(got.value())
    elif as_json:
        out_json({"name": name, "version": got.version, "created": got.created_time,
                  "value": got.value().masked})
    else:
        out(f"{name} v{got.version} ({got.created_time:%Y-%m-%d %H:%M}Z): {got.value()}")


@secrets.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@backend_option
@pass_app
def list_cmd(app: App, as_json: bool, backend: str | None, agent: str | None) -> None:
    """List the secrets in the store with their current version."""
    store = _store(app, backend, agent)
    rows: list[tuple[str, ...]] = []
    for name in store.list():
        meta = store.metadata(name)
        rows.append((name, str(meta.current_version), f"{meta.updated_time:%Y-%m-%d %H:%M}"))
    if as_json:
        out_json({"store": store.description,
                  "secrets": [{"name": n, "version": int(v), "updated": u}
                              for n, v, u in rows]})
        return
    out(f"# {store.description}")
    out(table(rows, ("name", "version", "updated")) if rows else "(no secrets)")


@secrets.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@backend_option
@pass_app
def history_cmd(app: App, name: str, as_json: bool, backend: str | None,
                agent: str | None) -> None:
    """Show the versions of NAME (values are never shown)."""
    from impromptu_ops.store import manage

    current, versions = manage.history(_store(app, backend, agent), name)

    def state(v: Any) -> str:
        flags = ["destroyed" if v.destroyed else "deleted" if v.deleted else "ok"]
        return ",".join(flags + (["current"] if v.version == current else []))

    if as_json:
        out_json({"name": name, "current": current,
                  "versions": [{"version": v.version, "created": v.created_time,
                                "state": state(v)} for v in versions]})
        return
    out(table([(str(v.version), f"{v.created_time:%Y-%m-%d %H:%M:%S}", state(v))
               for v in versions], ("version", "created", "state")))


@secrets.command("rollback")
@click.argument("name")
@click.option("--version", "version", type=int, required=True, help="The version to restore.")
@backend_option
@pass_app
def rollback_cmd(app: App, name: str, version: int, backend: str | None,
                 agent: str | None) -> None:
    """Make an older version of NAME current again (written as a new version)."""
    from impromptu_ops.store import manage

    new = manage.rollback(_store(app, backend, agent), name, version)
    out(f"{name}: version {version} restored as version {new}")


@secrets.command("exec", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.option("--only", "only", multiple=True,
              help="Secret names to pass (repeat or comma-separate; default: only "
                   + " and ".join(contract.RUNTIME_SECRET_NAMES) + ", when stored). "
                   "Management, wallet and Vault keys are passed only when named here.")
@click.option("--files", "files", default=None, metavar="DIR",
              help="Pass secrets as 0400 files in a private folder created inside DIR "
                   "('auto': /dev/shm when available), removed when the command ends.")
@click.option("--restart-on-change", "restart", is_flag=True,
              help="Restart the command (SIGTERM, then SIGKILL after exec.stop_timeout) "
                   "with the new values when a secret it got has a new version in the "
                   "store (checked every exec.poll_seconds).")
@click.option("--no-masking", "no_masking", is_flag=True,
              help="Do not conceal secrets in the command's output (default: every passed "
                   "value and key-shaped string becomes <concealed by impromptu-ops>).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@backend_option
@pass_app
def exec_cmd(app: App, only: tuple[str, ...], files: str | None, restart: bool,
             no_masking: bool, command: tuple[str, ...], backend: str | None,
             agent: str | None) -> int:
    """Run COMMAND with the agent's keys in its environment, its output masked.

    By default only IMPROMPTU_API_KEY and OPENROUTER_API_KEY are passed. This command stays
    as the parent: it forwards signals, masks the output (through a pseudo-terminal when
    on a terminal) and exits with the command's exit code (128+N when a signal N ended it).

    Example: impromptu-ops secrets exec -- ./heartbeat.sh

    Example: impromptu-ops secrets exec --restart-on-change -- python agent.py
    """
    from impromptu_ops.store import childenv
    from impromptu_ops.supervisor import ExecOptions, Supervisor

    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    store = _store(app, backend, agent)
    limits = app.settings(store__backend=backend, store__agent=agent).exec
    parent = None
    if files is not None:
        parent = childenv.default_files_parent() if files == "auto" else Path(files)
    options = ExecOptions(argv=command, masking=not no_masking, files_parent=parent,
                          restart_on_change=restart, poll_seconds=limits.poll_seconds,
                          stop_timeout=limits.stop_timeout, drain_seconds=limits.drain_seconds,
                          quiet_seconds=limits.quiet_seconds)
    sys.stdout.flush()
    ended = Supervisor(options, lambda: childenv.collect(store, names or None),
                       lambda wanted: childenv.current_versions(store, wanted),
                       lambda line: err(f"impromptu-ops secrets exec: {line}")).run()
    if ended.signal is not None:
        err(f"impromptu-ops secrets exec: the command was ended by signal {ended.signal} "
            f"({_signal_name(ended.signal)}): exit {ended.exit_code}")
    return ended.exit_code


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


@secrets.command("import")
@click.option("--from-env", "from_env", is_flag=True,
              help="Import " + ", ".join(contract.SECRET_ENV.values()) + " from the "
                   "environment.")
@click.option("--from-file", "from_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Import NAME=value lines, e.g. ~/.impromptu/env.")
@click.option("--force", is_flag=True, help="Store values that do not look like their name.")
@backend_option
@pass_app
def import_cmd(app: App, from_env: bool, from_file: Path | None, force: bool,
               backend: str | None, agent: str | None) -> None:
    """Move keys from the environment or an env file into the store."""
    from impromptu_ops.store import manage

    if from_env == (from_file is not None):
        raise click.UsageError("give exactly one of --from-env or --from-file")
    found = (manage.values_from_env(os.environ) if from_env
             else manage.read_env_file(from_file.expanduser()))  # type: ignore[union-attr]
    if not found:
        raise InputError("no known secret variables found ("
                         + ", ".join(contract.SECRET_ENV.values()) + ")")
    store = _store(app, backend, agent)
    report = manage.import_values(store, found, force=force)
    for name, version in report.stored:
        out(f"stored {name} version {version}")
    for name in report.unchanged:
        out(f"unchanged {name} (the store already has this value)")
    if from_file is not None and report.stored:
        err(f"note: {from_file} still holds the values: "
            f"run `impromptu-ops secrets scan --fix {from_file}` to remove them")
    if report.refused:  # one line on stderr, naming each refusal
        raise InputError(f"{len(report.refused)} value(s) refused: "
                         + "; ".join(f"{name}: {why}" for name, why in report.refused))


@secrets.command("scan")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--fix", is_flag=True,
              help="Move named keys into the store and comment out their lines.")
@click.option("--no-system", is_flag=True, help="Skip /etc and the cron spool.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@backend_option
@pass_app
def scan_cmd(app: App, paths: tuple[Path, ...], fix: bool, no_system: bool, as_json: bool,
             backend: str | None, agent: str | None) -> int:
    """Find plaintext keys in shell rc, .env, crontab and systemd files (exit 1 if any)."""
    from impromptu_ops import secretscan

    missing = [p for p in paths if not p.exists()]
    if missing:  # a typo must not read as "no keys found"
        raise InputError(f"no such file or folder: {missing[0]}")
    targets = list(paths) or secretscan.default_paths(Path.home(), Path.cwd(),
                                                      system=not no_system)
    report = secretscan.scan(targets)
    for path, why in report.skipped:
        err(f"skipped {path}: {why}")
    rows: list[tuple[str, ...]] = [(f"{f.path}:{f.line}", f.kind, f.name or "-", f.masked)
                                   for f in report.findings]
    if not fix:
        if as_json:
            out_json({"files": report.files, "findings": [
                {"where": w, "kind": k, "name": n, "value": v} for w, k, n, v in rows],
                "skipped": [{"path": str(p), "why": why} for p, why in report.skipped]})
        elif rows:
            out(table(rows, ("where", "kind", "store as", "value")))
        else:
            out(f"no plaintext keys found in {report.files} file(s)")
        return 1 if rows else 0
    result = secretscan.fix(_store(app, backend, agent), report)
    for f in result.moved:
        out(f"moved {f.path}:{f.line} -> {f.name}")
    for path, backup in result.backups:
        out(f"backup of {path} kept in the store as {backup}")
    for f, why in result.left:
        err(f"left {f.path}:{f.line} ({f.kind} {f.masked}): {why}")
    return 1 if result.left else 0


@secrets.command("check")
@backend_option
@pass_app
def check_cmd(app: App, backend: str | None, agent: str | None) -> None:
    """Check that the store answers (Vault: reachable, unsealed, token valid)."""
    out(_store(app, backend, agent).check().summary)


@secrets.command("policy")
@click.argument("role", type=click.Choice(["heartbeat", "rotation", "operator"]))
@click.option("--agent", default=None, callback=agent_name, metavar="NAME",
              help="Agent name (default: the global --agent, else 'default').")
@pass_app
def policy_cmd(app: App, role: str, agent: str | None) -> None:
    """Print the least-privilege Vault policy (HCL) for ROLE and one agent."""
    from impromptu_ops.store.policies import render_policy

    s = app.settings(store__agent=agent)
    out(render_policy(s.paths.policies_dir, role, s.store.agent, s.store.vault_mount,
                      s.store.vault_prefix, approle_mount=s.store.vault_approle_mount,
                      approle_role=s.rotation.approle_role), nl=False)
