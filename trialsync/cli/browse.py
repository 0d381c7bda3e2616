"""Commands for browsing the database with other tools: datasette-metadata."""

from __future__ import annotations

import sys

from .options import DbOption, db_path


def datasette_metadata(db: DbOption = None) -> None:
    """Print Datasette metadata (source, licence, descriptions, facets, search) for the database.
    Example: trialsync datasette-metadata > metadata.json"""
    from ..render.datasette import datasette_metadata_json

    # Datasette names a database after its file, without the extension; the file itself is not read.
    sys.stdout.write(datasette_metadata_json(db_path(db).stem) + "\n")
