"""The API's enumerated values beside the words the website shows for them, and reading a person's way of
writing one ("phase 2", "Recruiting", "active not recruiting") back into the API's value. No I/O."""

from __future__ import annotations

import difflib
import re

from .errors import UsageError
from .statuses import STATUS_LABELS

PHASE_LABELS = {"EARLY_PHASE1": "Early Phase 1", "PHASE1": "Phase 1", "PHASE2": "Phase 2", "PHASE3": "Phase 3",
                "PHASE4": "Phase 4", "NA": "Not Applicable"}
STUDY_TYPE_LABELS = {"INTERVENTIONAL": "Interventional", "OBSERVATIONAL": "Observational",
                     "EXPANDED_ACCESS": "Expanded Access"}
SPONSOR_CLASS_LABELS = {"NIH": "NIH", "FED": "Other U.S. federal agency", "OTHER_GOV": "Other government",
                        "INDIV": "Individual", "INDUSTRY": "Industry", "NETWORK": "Network", "OTHER": "Other",
                        "AMBIG": "Ambiguous", "UNKNOWN": "Unknown"}
DATE_TYPE_LABELS = {"ACTUAL": "Actual", "ESTIMATED": "Estimated"}
SEX_LABELS = {"ALL": "All", "FEMALE": "Female", "MALE": "Male"}


def label(values: dict[str, str], value) -> str:
    """The website's words for ``value`` (an API value); a value not listed is shown as it is."""
    return values.get(value, value) if isinstance(value, str) else ""


def phases_label(phases: str | None) -> str:
    """"PHASE1, PHASE2" as the website writes it: "Phase 1/Phase 2"."""
    if not phases:
        return ""
    return "/".join(label(PHASE_LABELS, p.strip()) for p in phases.split(","))


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def _reader(values: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    known = {_key(value): value for value in values}
    known.update({_key(words): value for value, words in values.items()})
    known.update({_key(spelling): value for spelling, value in (extra or {}).items()})
    return known


_STATUS_READER = _reader(STATUS_LABELS, {"active": "ACTIVE_NOT_RECRUITING", "unknown": "UNKNOWN",
                                         "not yet": "NOT_YET_RECRUITING", "invitation": "ENROLLING_BY_INVITATION"})
_PHASE_READER = _reader(PHASE_LABELS, {"1": "PHASE1", "2": "PHASE2", "3": "PHASE3", "4": "PHASE4",
                                       "early 1": "EARLY_PHASE1", "early phase1": "EARLY_PHASE1", "0": "EARLY_PHASE1",
                                       "n/a": "NA", "none": "NA"})
_TYPE_READER = _reader(STUDY_TYPE_LABELS, {"expanded": "EXPANDED_ACCESS"})
_CLASS_READER = _reader(SPONSOR_CLASS_LABELS, {"federal": "FED", "government": "OTHER_GOV", "individual": "INDIV"})
_SEX_READER = _reader(SEX_LABELS, {"f": "FEMALE", "m": "MALE", "women": "FEMALE", "men": "MALE", "both": "ALL"})


def _read(reader: dict[str, str], values: dict[str, str], text: str, what: str, option: str) -> str:
    # A sign is not punctuation to drop: "-1" is no phase, though "1" is.
    found = None if re.match(r"\s*[-+]\s*\d", text or "") else reader.get(_key(text or ""))
    if found is not None:
        return found
    close = difflib.get_close_matches((text or "").strip().upper().replace(" ", "_"), list(values), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(_key(text or ""), list(reader), n=1, cutoff=0.6)
        close = [reader[close[0]]] if close else []
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UsageError(f"{option}: {text!r} is not a {what}{hint}; one of: {', '.join(values)}")


def read_status(text: str, option: str = "--status") -> str:
    """The API's overall status for ``text`` (an API value or a website label, any case)."""
    return _read(_STATUS_READER, STATUS_LABELS, text, "study status", option)


def read_phase(text: str, option: str = "--phase") -> str:
    """The API's phase for ``text`` ("2", "phase 2", "PHASE2", "early phase 1", "NA")."""
    return _read(_PHASE_READER, PHASE_LABELS, text, "phase", option)


def read_study_type(text: str, option: str = "--type") -> str:
    """The API's study type for ``text``."""
    return _read(_TYPE_READER, STUDY_TYPE_LABELS, text, "study type", option)


def read_sponsor_class(text: str, option: str = "--sponsor-class") -> str:
    """The API's sponsor class for ``text``."""
    return _read(_CLASS_READER, SPONSOR_CLASS_LABELS, text, "sponsor class", option)


def read_sex(text: str, option: str = "--sex") -> str:
    """The API's sex value for ``text``."""
    return _read(_SEX_READER, SEX_LABELS, text, "sex", option)


def read_many(text: str, read) -> list[str]:
    """Several values separated by commas (or ``|``), each read with ``read``. A comma inside one value
    ("Active, not recruiting") is read as part of it: the longest run of parts that reads as one wins."""
    parts = [part.strip() for part in re.split(r"[,|]", text or "") if part.strip()]
    found = []
    while parts:
        for length in range(len(parts), 0, -1):
            try:
                found.append(read(", ".join(parts[:length])))
            except UsageError:
                if length == 1:
                    raise
                continue
            parts = parts[length:]
            break
    return list(dict.fromkeys(found))


def read_values(values: list[str] | None, read, name: str) -> list[str]:
    """Every value given to a repeatable option or list parameter ``name`` (each may hold several, separated by
    commas), read with ``read(text, name)``, once each in the order given; an empty one is a UsageError, not
    "no filter"."""
    for value in values or []:
        if not value.strip(" ,|"):
            raise UsageError(f"{name} needs a value, not {value!r}")
    return list(dict.fromkeys(found for value in values or []
                              for found in read_many(value, lambda text: read(text, name))))


def plural(count: int, word: str, words: str | None = None) -> str:
    """'1 study', '2 studies': a count with its noun, singular for exactly one."""
    return f"{count} {word if count == 1 else (words or word + 's')}"
