"""The ``colliderfm`` command line: one small function per verb, each one library call.

User errors (bad files, bad configs) print one line ``colliderfm: error: ...`` and exit 2.
The verbs live in :mod:`colliderfm.cli.data` and :mod:`colliderfm.cli.train`; importing this
package registers them on :data:`app`.
"""

from __future__ import annotations

import signal
import sys

import typer

from colliderfm.cli import data, train  # noqa: F401  (register the verbs)
from colliderfm.cli.app import app
from colliderfm.errors import ColliderFMError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run a verb; every failure is one line on stderr and an exit code.

    Exit codes: 0 success; 2 a user error (bad file, config or command line:
    ``colliderfm: error: ...``); 130 Ctrl-C and 143 SIGTERM (``colliderfm: interrupted
    (SIGINT): ...``, saying whether and how ``--resume`` continues a training run).

    Args:
        argv: the arguments after ``colliderfm`` (default: ``sys.argv[1:]``).
    """
    from colliderfm.runtime import raise_on_sigterm
    from colliderfm.train.logging import setup_console_logging

    setup_console_logging()
    raise_on_sigterm()
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        # the command itself, not typer's wrapper: that turns Ctrl-C into a silent exit code
        with command.make_context("colliderfm", args) as ctx:
            command.invoke(ctx)
    except ColliderFMError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (runtime.Terminated)
        signum = int(getattr(exc, "signum", signal.SIGINT))
        hint = getattr(exc, "resumable", None)
        typer.echo(
            f"colliderfm: interrupted ({signal.Signals(signum).name})"
            + (f": {hint}" if hint else ""),
            err=True,
        )
        sys.exit(128 + signum)
    except OSError as exc:  # disk full, permission denied, ...: the environment, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
    except typer.Exit as exc:  # --help, or a verb that ends early on purpose
        sys.exit(exc.exit_code)
    except Exception as exc:
        if type(exc).__name__ == "Exit":  # click's own (ctx.exit)
            sys.exit(int(getattr(exc, "exit_code", 0)))
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))  # type: ignore[attr-defined]
            sys.exit(0)
        if isinstance(exc, _usage_error_types()):
            _fail(_usage_message(exc))
        raise


def _fail(msg: str) -> None:
    typer.echo(f"colliderfm: error: {msg}", err=True)
    sys.exit(2)


def _usage_message(exc: Exception) -> str:
    """One line for a command-line error: the command, what is wrong, where help is."""
    msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    msg = " ".join(msg.split())
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return msg
    path = ctx.command_path
    verb = path.split(" ", 1)[1] + ": " if " " in path else ""
    return f"{verb}{msg} (see '{path} --help')"


def _usage_error_types() -> tuple[type[Exception], ...]:
    """Click's ``ClickException`` classes (newer typer releases vendor their own copy of click)."""
    types: list[type[Exception]] = []
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    try:
        from typer._click.exceptions import ClickException

        types.append(ClickException)
    except ImportError:
        pass
    return tuple(types)
