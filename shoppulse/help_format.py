"""How `shoppulse --help` names option values: plain words, no `<bool>`/`<str>` markers.

Typer marks every option with its Python type (`--dry-run <bool>`, `--source <str>`) and wraps
required arguments in braces in the usage line (`{statement}`). The CLI's group class below
rewrites each command's parameters once, when the command is looked up: flags show no value,
choices list their values (`table|csv|json`), other options a conventional word (`PATH`, `TEXT`,
`INTEGER`), and arguments their name in capitals (`shoppulse sql [OPTIONS] STATEMENT`).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperGroup, TyperOption

#: Typer's type labels and the words shown instead.
_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH", "datetime": "TIME"}


def _word(label: str | None) -> str | None:
    if not label:
        return None
    bare = label.strip("<>")
    if "|" in bare:  # a choice: its values are the useful part
        return bare
    return _WORDS.get(bare, bare.upper())


class PlainOption(TyperOption):
    """An option whose value is named in plain words; a flag names none."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        return super().display_type_rich(ctx) if self.metavar else _word(self.display_type(ctx))

    def display_type(self, ctx: Any) -> str:
        label = super().display_type(ctx)
        return "" if self.is_flag else (_word(label) or "")


class PlainArgument(TyperArgument):
    """An argument named in capitals in the usage line, without a type marker."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def display_type(self, ctx: Any) -> str:
        return ""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = (self.metavar or self.name or "").upper()
        if self.nargs != 1:
            name += "..."
        return [name if self.required else f"[{name}]"]


def plain_parameters(command: Any, ctx: Any) -> None:
    """Give `command`'s parameters (and its subcommands', for a group) plain value names."""
    for param in command.get_params(ctx):
        if type(param) is TyperOption:
            param.__class__ = PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = PlainArgument
    for sub in getattr(command, "commands", {}).values():
        plain_parameters(sub, ctx)


class PlainHelpGroup(TyperGroup):
    """The CLI's root group: every command it hands out names its values in plain words."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        for param in params:
            if type(param) is TyperOption:
                param.__class__ = PlainOption
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            plain_parameters(command, ctx)
        return command
