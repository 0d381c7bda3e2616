"""The Atom feed of a topic's changes: the ``feed`` command (``pull --feed DIR`` writes them too)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import DbOption, TopicArgument, db_path, err, read_db, topic_name


def feed(
    topic: TopicArgument = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write to this file (left untouched when its feed did not change); - or nothing "
        "means standard output.", dir_okay=False, show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Write a topic's changes as an Atom feed, one entry per study and pull. Example: trialsync feed -o spine.atom"""
    from ..render.feed import render_feed, write_feed_file
    from ..reports.changes import feed_entries
    from ..store.db import database_files
    from ..vocab import plural
    from .streams import output_file

    output = output_file(output)
    conn = read_db(db)
    name = topic_name(conn, topic)
    found = feed_entries(conn, name)
    text = render_feed(found)
    if output is None:
        sys.stdout.write(text)
        return
    entries = plural(len(found["entries"]), "entry", "entries")
    if write_feed_file(output, text, database_files(db_path(db))):
        err(f"wrote the feed of {name} ({entries}) to {output}")
    else:
        err(f"{output} already holds the feed of {name} ({entries}); left as it was")

