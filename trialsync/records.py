"""Facts about the shape of a study record that both the API client and the transform need."""

from __future__ import annotations

import re
from collections.abc import Mapping

_NCT_ID = re.compile(r"^NCT\d{8}$")


def nct_id_of(study: Mapping) -> str:
    """The NCT id of a full or ``fields``-filtered study record ('' when it has none)."""
    try:
        nct_id = study["protocolSection"]["identificationModule"]["nctId"]
    except (KeyError, TypeError):
        return ""
    return nct_id if isinstance(nct_id, str) else ""


def is_nct_id(text: str) -> bool:
    """True for a well-formed NCT id such as ``NCT04042844``."""
    return bool(_NCT_ID.match(text or ""))
