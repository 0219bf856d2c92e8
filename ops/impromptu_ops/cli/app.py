"""What every command receives: the global options and the lazily loaded settings.

Commands get an :class:`App` through ``@pass_app`` and ask it for settings (built once,
with the command's own flags as overrides) instead of reading the environment themselves.
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
        extra = {k.replace("__", "."): v for k, v in more.items() if v is not None}
        if self._settings is None or extra:
            merged: Mapping[str, Any] = {**self.overrides, **extra}
            built = load_settings(merged, config_file=self.config_file)
            if extra:
                return built
            self._settings = built
        return self._settings


pass_app = click.make_pass_decorator(App, ensure=True)
