"""NCT ids: what a well-formed one looks like, and where a (full or ``fields``-filtered) record keeps it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

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


_CHUNK_BITS = 16  # ids are kept as bits of chunks of 65,536 ids (8 KB each)


class NctIdSet:
    """A set of NCT ids in about flat memory, however many it holds: an id written NCT + 8 digits is a bit of a
    chunk of 65,536 consecutive ids (8 KB per chunk in use: the registry's ids, from NCT00000102 to about
    NCT07500000, fit in 115 chunks, about 1 MB), any other text an item of a plain set. A Python set of 560,000
    ids would take over 40 MB. Iterates in NCT id order (the other texts after)."""

    __slots__ = ("_chunks", "_others", "_count")

    def __init__(self, nct_ids: Iterable[str] = ()):
        self._chunks: dict[int, bytearray] = {}
        self._others: set[str] = set()
        self._count = 0
        self.update(nct_ids)

    def add(self, nct_id: str) -> bool:
        """Add ``nct_id``; whether it was not there yet."""
        if not is_nct_id(nct_id):
            if nct_id in self._others:
                return False
            self._others.add(nct_id)
            self._count += 1
            return True
        number = int(nct_id[3:])
        chunk = self._chunks.get(number >> _CHUNK_BITS)
        if chunk is None:
            chunk = self._chunks[number >> _CHUNK_BITS] = bytearray(1 << (_CHUNK_BITS - 3))
        offset = number & ((1 << _CHUNK_BITS) - 1)
        mask = 1 << (offset & 7)
        if chunk[offset >> 3] & mask:
            return False
        chunk[offset >> 3] |= mask
        self._count += 1
        return True

    def update(self, nct_ids: Iterable[str]) -> None:
        """Add each of ``nct_ids``."""
        for nct_id in nct_ids:
            self.add(nct_id)

    def __contains__(self, nct_id: object) -> bool:
        if not isinstance(nct_id, str) or not is_nct_id(nct_id):
            return nct_id in self._others
        number = int(nct_id[3:])
        chunk = self._chunks.get(number >> _CHUNK_BITS)
        offset = number & ((1 << _CHUNK_BITS) - 1)
        return chunk is not None and bool(chunk[offset >> 3] & (1 << (offset & 7)))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        for key in sorted(self._chunks):
            chunk = self._chunks[key]
            for index, byte in enumerate(chunk):
                if byte:
                    for bit in range(8):
                        if byte & (1 << bit):
                            yield f"NCT{(key << _CHUNK_BITS) + index * 8 + bit:08d}"
        yield from sorted(self._others)

    def __repr__(self) -> str:
        return f"NctIdSet({len(self)} ids)"
