"""``doctor``'s checks and ``config``'s settings as lines of text or JSON."""

from __future__ import annotations

from .formats import to_json
from .visible import visible

MARKS = {"ok": "✓", "warn": "!", "fail": "✗"}
PLAIN_MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}  # without a terminal: plain ASCII


def render_checks(checks, fmt: str, terminal: bool = False, quiet: bool = False) -> str:
    """One line per check (only the checks not ``ok`` when ``quiet``): a mark, the name, what was found and,
    when not well, what to do; or ``{"ok", "checks": [{"name", "state", "message", "advice"}]}`` as JSON."""
    if fmt == "json":
        return to_json({"ok": all(c.state == "ok" for c in checks),
                        "checks": [{"name": c.name, "state": c.state, "message": c.message, "advice": c.advice}
                                   for c in checks]})
    marks, dash = (MARKS, " — ") if terminal else (PLAIN_MARKS, " -- ")
    lines = []
    for check in checks:
        if quiet and check.state == "ok":
            continue
        advice = f"{dash}{check.advice}" if check.advice and check.state != "ok" else ""
        lines.append(visible(f"{marks[check.state]} {check.name}: {check.message}{advice}"))
    return "\n".join(lines)


def render_settings(summary: list[tuple[str, str, str]], settings: list[dict], fmt: str) -> str:
    """The settings in effect (``summary``: name, value, where it comes from) and every TRIALSYNC_* variable
    (``settings``: ``{"name", "value", "default", "note"}``, value None when unset) as aligned text, or
    ``{"summary": {name: {"value", "from"}}, "environment": [...]}`` as JSON."""
    if fmt == "json":
        return to_json({"summary": {name: {"value": value, "from": source} for name, value, source in summary},
                        "environment": settings})
    width = max(len(name) for name, _, _ in summary)
    lines = [f"{name:<{width}}  {value}  ({source})" for name, value, source in summary]
    lines.append("")
    width = max(len(s["name"]) for s in settings)
    for setting in settings:
        shown = setting["value"] if setting["value"] is not None else f"unset, default: {setting['default']}"
        note = f"  ({setting['note']})" if setting["note"] else ""
        lines.append(f"{setting['name']:<{width}}  {shown}{note}")
    return "\n".join(visible(line) for line in lines)
