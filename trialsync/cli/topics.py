"""The topics command group: add (a search or a watchlist of NCT ids), list, show, remove."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_RATE
from ..errors import NotFound, TrialsyncError, UsageError
from ..vocab import plural
from .completion import complete_topic
from .options import (
    ApiUrlOption, DbOption, FormatOption, RateOption, WaitOption, api_client, db_path, emit, read_db,
    resolve_format, write_db,
)

topics_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Add, list, show and remove topics (searches, or watchlists of NCT ids).")


def _search_option(name: str, help_text: str):
    return Annotated[Optional[str], typer.Option(f"--{name}", help=help_text, show_default=False)]


def _hidden_option(name: str):
    return Annotated[Optional[str], typer.Option(f"--{name}", hidden=True)]


def _one_of(new: str | None, old: str | None, names: str) -> str | None:
    """The value of an option given by its name or by its old short name; UsageError if both are given."""
    if new is not None and old is not None:
        raise UsageError(f"{names} are one option; give it once")
    return new if new is not None else old


@topics_app.command("add")
def topics_add(
    name: Annotated[str, typer.Argument(help="Topic name: lowercase letters, digits, '-', '_' or '.'.", show_default=False)],
    condition: _search_option("condition", "query.cond: conditions or diseases.") = None,
    intervention: _search_option("intervention", "query.intr: interventions or treatments.") = None,
    term: _search_option("term", "query.term: other terms.") = None,
    title: _search_option("title", "query.titles: title or acronym.") = None,
    sponsor: _search_option("sponsor", "query.spons: sponsor or collaborator.") = None,
    location: _search_option("location", "query.locn: location terms.") = None,
    status: _search_option("status", "filter.overallStatus: statuses, comma-separated, e.g. recruiting,completed.") = None,
    advanced: _search_option("advanced", "filter.advanced: an Essie expression.") = None,
    geo: _search_option("geo", "filter.geo: e.g. distance(39.0035707,-77.1013313,50mi).") = None,
    ids: _search_option("ids", "A watchlist: these NCT ids (comma- or space-separated), pulled with filter.ids.") = None,
    ids_file: Annotated[Optional[Path], typer.Option("--ids-file", help="A watchlist: the NCT ids in this file.",
                                                     dir_okay=False, show_default=False)] = None,
    # the API's own short names, which earlier releases took: kept for scripts, hidden from the help
    cond: _hidden_option("cond") = None, intr: _hidden_option("intr") = None, titles: _hidden_option("titles") = None,
    spons: _hidden_option("spons") = None, locn: _hidden_option("locn") = None,
    replace: Annotated[bool, typer.Option("--replace", help="Change an existing topic's search.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Ask the API how many studies match (one request; "
                                          "a long watchlist one per 300 ids) and show the website's search; "
                                          "store nothing.")] = False,
    api_url: ApiUrlOption = None,
    rate: RateOption = DEFAULT_RATE,
    db: DbOption = None,
    wait: WaitOption = 0,
) -> None:
    """Add a topic: a name plus API search parameters, or NCT ids. Example: trialsync topics add sci --condition "spinal cord injury" """
    from .. import store
    from ..sync.checks import count_matches
    from ..topics import make_topic, website_search_url

    if ids_file is not None:
        try:
            ids = " ".join(filter(None, [ids, ids_file.read_text(encoding="utf-8-sig")]))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--ids-file: cannot read {ids_file}: {getattr(exc, 'strerror', None) or exc}") from None
    topic = make_topic(name, {"cond": _one_of(condition, cond, "--condition and --cond"),
                              "intr": _one_of(intervention, intr, "--intervention and --intr"), "term": term,
                              "titles": _one_of(title, titles, "--title and --titles"),
                              "spons": _one_of(sponsor, spons, "--sponsor and --spons"),
                              "locn": _one_of(location, locn, "--location and --locn"), "status": status, "advanced": advanced, "geo": geo, "ids": ids})
    if dry_run:
        count = count_matches(api_client(api_url, rate), topic)
        sys.stdout.write(f"{topic.name}: {count} {'study matches' if count == 1 else 'studies match'} this search "
                         f"(nothing stored)\nwebsite: {website_search_url(topic)}\n")
        return
    with write_db(db, wait) as conn:
        if replace and store.get_stored_topic(conn, topic.name) is None:
            raise NotFound(f"unknown topic {topic.name!r}: --replace changes a stored topic; leave it out to add one")
        added = store.save_topic(conn, topic, replace=replace)
    what = "added topic" if added else "changed topic; its next pull fetches everything under the new search:"
    sys.stdout.write(f"{what} {topic.name}; pull it with: trialsync pull {topic.name}\n")


@topics_app.command("list")
def topics_list(db: DbOption = None, fmt: FormatOption = None) -> None:
    """List stored topics with their studies and last pull. Example: trialsync topics list"""
    from .. import reports
    from ..render.tables import Column, rows_as
    from ..topics import DEFAULT_TOPIC_NAME

    rows = reports.topic_rows(read_db(db))
    fmt = resolve_format(fmt)
    if not rows and fmt not in ("json", "csv", "nl"):
        sys.stdout.write(f"No topics stored yet; `trialsync pull` adds and pulls the built-in {DEFAULT_TOPIC_NAME}.\n")
        return
    columns = [Column("name", "Topic"), Column("studies", "Studies", numeric=True),
               Column("last_pull", "Last pull", drop=2), Column("search", "Search", flex=True, min_width=16, drop=1)]
    emit(rows_as(rows, columns, fmt))


@topics_app.command("show")
def topics_show(
    name: Annotated[str, typer.Argument(help="Topic name.", show_default=False, autocompletion=complete_topic)],
    db: DbOption = None,
    api_url: ApiUrlOption = None,
) -> None:
    """Show a topic's search, the exact API URL it requests and the website's search. Example: trialsync topics show stem-cell-spine"""
    from .. import store
    from ..api import DEFAULT_PAGE_SIZE, ApiClient
    from ..topics import BUILTIN_TOPICS, website_search_url

    if db_path(db).exists() or name not in BUILTIN_TOPICS:
        topic = store.get_topic(read_db(db), name)
    else:
        topic = BUILTIN_TOPICS[name]
    lines = [f"topic: {topic.name}"] + [f"{k}: {v}" for k, v in topic.search_params().items()]
    if topic.search_params():
        params = {**topic.search_params(), "pageSize": str(DEFAULT_PAGE_SIZE), "countTotal": "true"}
        lines.append(f"url: {ApiClient(base_url=api_url).url_for('/studies', params)}")
        lines.append(f"website: {website_search_url(topic)}")
    else:
        lines.append("url: none (this topic holds imported studies only)")
    sys.stdout.write("\n".join(lines) + "\n")


@topics_app.command("remove")
def topics_remove(
    name: Annotated[str, typer.Argument(help="Topic name.", show_default=False, autocompletion=complete_topic)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    wait: WaitOption = 0,
) -> None:
    """Remove a topic and its membership list; the study records and their history are kept."""
    from .. import store

    read_db(db).close()  # a missing database is an error here, never created
    with write_db(db, wait) as conn:
        if store.get_stored_topic(conn, name) is None:
            raise NotFound(f"unknown topic {name!r}: it is not stored")
        members = len(store.present_ids(conn, name))
        if not yes and not typer.confirm(
                f"Remove topic {name} and its list of {plural(members, 'study', 'studies')}? (study records and history "
                "are kept)"):
            raise TrialsyncError("not removed")
        store.remove_topic(conn, name)
    sys.stdout.write(f"removed topic {name}; study records and their history are kept\n")
