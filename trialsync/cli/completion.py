"""Shell completion: ``trialsync completion SHELL`` prints the script that turns it on, and the candidates
for topic names (read from the database, which completing never creates or changes) and status values."""

from __future__ import annotations

import os
from enum import Enum
from typing import Annotated

import typer

COMPLETE_VAR = "_TRIALSYNC_COMPLETE"  # click's protocol: the shell runs trialsync with this set to complete


class Shell(str, Enum):
    """The shells ``trialsync completion`` writes a script for."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def enable() -> None:
    """Register typer's completion classes, which its scripts speak to (``complete_bash`` and the rest)."""
    from typer._completion_classes import completion_init

    completion_init()


def completion(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", show_default=False)]) -> None:
    """Print the script that completes commands, options, topics and statuses in a shell. Example: eval "$(trialsync completion bash)\""""
    import sys

    from typer._completion_shared import get_completion_script

    enable()
    sys.stdout.write(get_completion_script(prog_name="trialsync", complete_var=COMPLETE_VAR, shell=shell.value) + "\n")


def complete_topic(ctx: typer.Context, incomplete: str) -> list[str]:
    """The topic names that start with ``incomplete``: the stored ones (in the database ``--db`` or
    ``TRIALSYNC_DB`` names) and the built-in ones. Never fails: an unreadable database gives none."""
    try:
        from ..store import default_db_path
        from ..store.topics import stored_topic_names
        from ..topics import BUILTIN_TOPICS

        db = (ctx.params.get("db") if ctx is not None else None) or os.environ.get("TRIALSYNC_DB") or default_db_path()
        names = set(stored_topic_names(db)) | set(BUILTIN_TOPICS)
    except Exception:  # completing must never print a traceback into the shell
        return []
    return sorted(name for name in names if name.startswith(incomplete))


def complete_status(incomplete: str) -> list[str]:
    """The overall statuses (the API's values, in lower case) that complete ``incomplete``; after a comma,
    the last of several (``recruiting,comp`` gives ``recruiting,completed``)."""
    from ..statuses import STATUS_LABELS

    head, comma, last = incomplete.rpartition(",")
    return [f"{head}{comma}{value.lower()}" for value in STATUS_LABELS if value.lower().startswith(last.lower())]
