"""The command line's root: the typer app, its commands, and the one place failures become exit codes."""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Annotated

import typer

from .. import __version__
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, InvalidValue, TrialsyncError

# The option that carries each kind of value the lower layers may refuse (errors.InvalidValue).
OPTION_FOR = {"place": "--near", "distance": "--within", "search": "--search", "sort": "--sort"}
from ..store.db import describe_error
from . import browse, completion, doctor, feeds, reports, serve, studies, sync
from .options import err
from .streams import GuardedOutput, OutputError, discard_unwritten_output
from .topics import topics_app

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
    help="Keep a local SQLite mirror of the ClinicalTrials.gov studies you follow, and report on them.",
)
app.command("pull")(sync.pull)
app.command("import")(sync.import_command)
app.command("verify")(sync.verify)
app.command("status-report")(reports.status_report)
app.command("history")(reports.history)
app.command("changes")(reports.changes)
app.command("pulls")(reports.pulls_command)
app.command("report")(reports.report)
app.command("list")(studies.list_command)
app.command("show")(studies.show)
app.command("export")(studies.export)
app.command("feed")(feeds.feed)
app.command("datasette-metadata")(browse.datasette_metadata)
app.command("doctor")(doctor.doctor)
app.command("config")(doctor.config)
app.command("mcp")(serve.serve_mcp)
app.add_typer(topics_app, name="topics")
app.command("completion")(completion.completion)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"trialsync {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Keep a local SQLite mirror of the ClinicalTrials.gov studies you follow, and report on them."""


def _is_click_error(exc: Exception) -> bool:
    # typer's own copy of click and click itself raise different classes that share this protocol.
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def _is_utf8(argument: str) -> bool:
    """Whether a command-line argument was valid UTF-8 (Python keeps undecodable bytes as lone surrogates)."""
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def run() -> None:
    """Run the command line (``trialsync.cli.main`` calls this once signals are taken care of)."""
    for argument in sys.argv[1:]:
        if not argument.isascii() and not _is_utf8(argument):
            shown = argument.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            err(f"argument '{shown}' is not valid UTF-8 text")
            sys.exit(EXIT_USAGE)
    if completion.COMPLETE_VAR in os.environ:  # the shell asks for candidates
        completion.enable()
    if not isinstance(sys.stdout, GuardedOutput):
        sys.stdout = GuardedOutput(sys.stdout)
    try:
        command = typer.main.get_command(app)
        code = command.main(prog_name="trialsync", standalone_mode=False)
        sys.stdout.flush()
    except OutputError as exc:
        discard_unwritten_output()
        err(str(exc))
        sys.exit(exc.exit_code)
    except InvalidValue as exc:
        err(f"{OPTION_FOR.get(exc.what, exc.what)}: {exc}")
        sys.exit(exc.exit_code)
    except TrialsyncError as exc:
        err(str(exc))
        sys.exit(exc.exit_code)
    except typer.Abort:
        err("aborted")
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except sqlite3.Error as exc:
        err(str(describe_error(exc)))
        sys.exit(EXIT_FAILED)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # the promise is one line, never a traceback
        if _is_click_error(exc):
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and exc.exit_code == EXIT_USAGE else ""
            err(f"{exc.format_message()}{hint}")
            sys.exit(exc.exit_code)
        if os.environ.get("TRIALSYNC_DEBUG"):
            raise
        err(f"unexpected error: {type(exc).__name__}: {exc} (set TRIALSYNC_DEBUG=1 for details)")
        sys.exit(EXIT_FAILED)
    if code == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt in a command into this code, silently
        err("interrupted")
    sys.exit(code if isinstance(code, int) else 0)
