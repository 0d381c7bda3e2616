"""``doctor`` (is all well with the database and the API?) and ``config`` (the settings in effect)."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_API_URL, DEFAULT_RATE
from ..errors import EXIT_FAILED
from .options import (
    ApiUrlOption, DbOption, RateOption, RetriesOption, TimeoutOption, api_client, db_path, err, is_terminal,
    stop_on_signal,
)

DOCTOR_RETRIES = 1  # a health check reports a failing API at once; a pull's retries are for passing faults
DOCTOR_TIMEOUT = 30.0
# Read by the command line itself, not by an option.
OTHER_VARIABLES = {"TRIALSYNC_DEBUG": "off (an unexpected error is one line; set it to see its traceback)"}


class CheckFormat(str, Enum):
    """Output formats of ``doctor`` and ``config``."""

    text = "text"
    json = "json"


Formats = Annotated[Optional[CheckFormat], typer.Option(
    "--format", "-f", help="Output format: text (default) or json.", show_default=False)]


def doctor(
    db: DbOption = None,
    api_url: ApiUrlOption = None,
    rate: RateOption = DEFAULT_RATE,
    retries: RetriesOption = DOCTOR_RETRIES,
    timeout: TimeoutOption = DOCTOR_TIMEOUT,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the checks that are not well.")] = False,
    fmt: Formats = None,
) -> None:
    """Check the database and the API, one line each with what to do; exit 1 unless all is well. Read-only. Example: trialsync doctor"""
    from ..render.doctor import render_checks
    from ..sync.doctor import all_well, check_api, check_database

    checks = check_database(db_path(db).expanduser())
    with stop_on_signal() as stop:
        checks += check_api(api_client(api_url, rate, retries, timeout, stop), rate)
    text = render_checks(checks, (fmt or CheckFormat.text).value, is_terminal(), quiet)
    if text:
        print(text, flush=True)
    if not all_well(checks):
        unwell = sum(check.state != "ok" for check in checks)
        err(f"doctor: {unwell} of {len(checks)} checks {'is' if unwell == 1 else 'are'} not well")
        raise typer.Exit(EXIT_FAILED)


def config(ctx: typer.Context, fmt: Formats = None) -> None:
    """Print the database path, the API URL, the rate and every TRIALSYNC_* variable in effect. Example: trialsync config"""
    from ..render.doctor import render_settings

    settings = environment_settings(ctx.find_root().command)
    print(render_settings(settings_in_effect(os.environ), settings, (fmt or CheckFormat.text).value), flush=True)


def settings_in_effect(env) -> list[tuple[str, str, str]]:
    """(name, value, where it comes from) of the database, the API URL and the rate a command without options
    uses, given the environment ``env``."""
    from . import signals_held

    with signals_held():  # requests loads compiled modules
        from ..api.client import RequestPacer

    def source(name: str, option: str, used: bool) -> str:
        return name if used else f"default; {option} or {name}"

    db, url, rate = env.get("TRIALSYNC_DB"), env.get("TRIALSYNC_API_URL"), env.get("TRIALSYNC_RATE")
    rate_used = bool(rate) and _is_number(rate)
    pace = float(rate) if rate_used else DEFAULT_RATE
    interval = RequestPacer(pace).interval
    return [
        ("database", str(db_path(Path(db) if db else None)), source("TRIALSYNC_DB", "--db", bool(db))),
        ("API URL", url or DEFAULT_API_URL, source("TRIALSYNC_API_URL", "--api-url", bool(url))),
        ("rate", f"{pace:g} requests a minute, " + (f"one every {interval:.2f} s" if interval else "no pacing"),
         source("TRIALSYNC_RATE", "--rate", rate_used)),
    ]


def _is_number(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False


def environment_settings(root) -> list[dict]:
    """Every TRIALSYNC_* variable an option of a command reads, or the command line itself, and every other
    TRIALSYNC_* variable set (a typo): ``{"name", "value", "default", "note"}`` by name, value None when unset."""
    from ..store import default_db_path

    found: dict[str, dict] = {}

    def walk(command, path: str) -> None:
        for param in command.params:
            for name in [param.envvar] if isinstance(param.envvar, str) else param.envvar or []:
                if name.startswith("TRIALSYNC_"):
                    entry = found.setdefault(name, {"param": param, "defaults": {}})
                    entry["defaults"].setdefault(param.default, []).append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}".strip())

    walk(root, "")
    defaults = {"TRIALSYNC_DB": str(default_db_path()), "TRIALSYNC_API_URL": DEFAULT_API_URL}
    settings = []
    for name, entry in found.items():
        param, value = entry["param"], os.environ.get(name)
        note = ""
        if value is not None:
            try:
                param.type.convert(value, param, None)
            except Exception as exc:  # typer's copy of click or click itself: a value the option refuses
                if not callable(getattr(exc, "format_message", None)):
                    raise
                note = f"refused by the commands: {exc.format_message()}"
        settings.append({"name": name, "value": value, "default": defaults.get(name) or _defaults(entry["defaults"]),
                         "note": note})
    for name, default in OTHER_VARIABLES.items():
        settings.append({"name": name, "value": os.environ.get(name), "default": default, "note": ""})
    known = {s["name"] for s in settings}
    for name in sorted(os.environ):
        if name.startswith("TRIALSYNC_") and name not in known:
            settings.append({"name": name, "value": os.environ[name], "default": "", "note": "not a trialsync setting"})
    return sorted(settings, key=lambda s: s["name"])


def _defaults(by_default: dict) -> str:
    """The default most commands give an option, and the commands whose default differs: ``5 (doctor: 1)``."""
    ordered = sorted(by_default.items(), key=lambda item: -len(item[1]))
    others = [f"{', '.join(sorted(paths))}: {_shown(value)}" for value, paths in ordered[1:]]
    return _shown(ordered[0][0]) + (f" ({'; '.join(others)})" if others else "")


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
