"""The ``colliderfm`` command line: one small function per verb, each one library call.

User errors (bad files, bad configs) print one line ``colliderfm: error: ...`` and exit 2.
The verbs live in :mod:`colliderfm.cli.data` and :mod:`colliderfm.cli.train`; importing this
package registers them on :data:`app`.
"""

from __future__ import annotations

import sys

import typer

from colliderfm.cli import data, train  # noqa: F401  (register the verbs)
from colliderfm.cli.app import app
from colliderfm.errors import ColliderFMError

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: run the app, turning user errors into one line and exit code 2."""
    from colliderfm.train.logging import setup_console_logging

    setup_console_logging()
    try:
        app(standalone_mode=False)
    except ColliderFMError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        typer.echo(f"colliderfm: error: {msg}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("colliderfm: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("colliderfm: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:  # disk full, permission denied, ...: the environment, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"colliderfm: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # usage errors (click's, or the copy newer typer vendors)
        if isinstance(exc, _usage_error_types()):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        raise


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
