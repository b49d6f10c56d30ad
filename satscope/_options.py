"""Typer options from a configuration dataclass: each setting declared once, on its field.

A field's ``metadata`` holds its option's ``help`` and, optionally, ``panel`` (the help section),
``flag`` (when the flag is not ``--field-name``, e.g. ``--model`` or ``--x/--no-x``) and
``envvar``. ``command_from`` builds a function with one keyword parameter per field, whose
signature typer reads; it calls ``build`` with the values by field name.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

__all__ = ["command_from"]


def _params(cls: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue  # not a command-line setting
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        option = typer.Option(
            flag,
            help=meta["help"],
            rich_help_panel=meta.get("panel"),
            envvar=meta.get("envvar"),
            show_envvar=bool(meta.get("envvar")),
        )
        annotation = Annotated[hints[f.name], option]  # type: ignore[valid-type]
        out.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return out


def command_from(cls: type, build: Callable[..., None], doc: str, context: bool = False) -> Callable[..., None]:
    """A typer command whose options are ``cls``'s fields; ``build(**values)`` runs it, or with
    ``context`` ``build(ctx, cls(**values))`` (the click context: which flags were typed)."""

    @functools.wraps(build)
    def command(*args: Any, **values: Any) -> None:
        if context:
            build(args[0] if args else values.pop("ctx"), cls(**values))
        else:
            build(**values)

    params = _params(cls)
    if context:
        ctx = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        params = [ctx, *params]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__annotations__ = {}
    return command
