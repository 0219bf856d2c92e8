"""What every command receives: the global options and the lazily loaded settings.

Commands get an :class:`App` through ``@pass_app`` and ask it for settings (built once,
with the command's own flags as overrides) instead of reading the environment themselves.
The settings are those of the selected agent (``--agent``, ``IMPROMPTU_AGENT``, a
command's own ``--agent``; ``default`` otherwise): :func:`impromptu_ops.fleet.roster.
agent_settings`. :meth:`App.file_settings` is the unselected view the ``fleet`` commands
start from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from impromptu_ops.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    debug: bool = False
    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self, **more: Any) -> Settings:
        """The effective settings; ``more`` adds ``{"section.field": value}`` flag values.

        Keyword names use ``__`` for the dot: ``settings(platform__api_url=url)``.
        """
        from impromptu_ops.fleet.roster import agent_settings

        extra = {k.replace("__", "."): v for k, v in more.items() if v is not None}
        if self._settings is None or extra:
            built = self.file_settings(**more)
            built = agent_settings(built, built.store.agent)
            if extra:
                return built
            self._settings = built
        return self._settings

    def file_settings(self, **more: Any) -> Settings:
        """The settings before an agent is selected (``agents`` holds every table)."""
        extra = {k.replace("__", "."): v for k, v in more.items() if v is not None}
        merged: Mapping[str, Any] = {**self.overrides, **extra}
        return load_settings(merged, config_file=self.config_file)


pass_app = click.make_pass_decorator(App, ensure=True)


def agent_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback of every ``--agent``: a bad name is a usage error before any work."""
    from impromptu_ops.errors import InputError
    from impromptu_ops.fleet.roster import check_name

    if value is None:
        return None
    try:
        return check_name(value)
    except InputError as exc:
        raise click.BadParameter(exc.message) from None
