"""NCT ids: what a well-formed one looks like, and where a (full or ``fields``-filtered) record keeps it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import UsageError

_NCT_ID = re.compile(r"NCT\d{8}")


def nct_id_of(study: Mapping) -> str:
    """The NCT id of a full or ``fields``-filtered study record ('' when it has none)."""
    try:
        nct_id = study["protocolSection"]["identificationModule"]["nctId"]
    except (KeyError, TypeError):
        return ""
    return nct_id if isinstance(nct_id, str) else ""


def is_nct_id(text: str) -> bool:
    """True for a well-formed NCT id such as ``NCT04042844`` (the whole text, nothing around it)."""
    return isinstance(text, str) and _NCT_ID.fullmatch(text) is not None


def read_nct_id(text: str) -> str:
    """The NCT id ``text`` names, written in any case with spaces around it; UsageError when it is none."""
    wanted = text.strip().upper()
    if not is_nct_id(wanted):
        raise UsageError(f"{text!r} is not an NCT id (NCT followed by 8 digits, e.g. NCT04042844)")
    return wanted


def study_url(nct_id: str) -> str:
    """The study's page on the ClinicalTrials.gov website."""
    return f"https://clinicaltrials.gov/study/{nct_id}"
