"""Parsing and flattening a page's records, here or in a worker process beside the pull.

Flattening a record (parse, rows, drift check) and writing rows to SQLite are both Python work, so two threads
take turns on the GIL instead of sharing two cores. A long listing therefore hands each page's records to one
worker process (``python -m trialsync.sync.prepare``) and writes the page before while the worker flattens: the
worker touches no database and no network, it only turns bytes into rows. Whatever goes wrong with it (it fails
on a record, dies, or cannot start) the page is flattened here instead, where a bad record fails exactly as it
always has, and the rest of the pull goes on without a worker.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import BinaryIO

from ..api import parse_study
from ..ids import nct_id_of
from .collector import fewer_collections
from ..transform import STUDY_COLUMNS, StudyRows, study_rows
from ..transform.drift import DataModel, drift_of

# (rows, drift found, NCT id as the record gives it) of one record.
Flattened = tuple[StudyRows, list[tuple[str, str]], str]


def flatten_records(raws: Sequence[bytes], model: DataModel | None) -> list[Flattened]:
    """Each record of ``raws`` parsed and flattened, with the drift it shows against ``model``. Raises what
    ``parse_study`` and ``study_rows`` raise for a record that is damaged or of the wrong shape."""
    flattened = []
    for raw in raws:
        record = parse_study(raw)
        rows = study_rows(record, raw)
        found = drift_of(record, model)
        flattened.append((rows, found, nct_id_of(record) if found else ""))
    return flattened


_RAW = STUDY_COLUMNS.index("raw")


def _with_raw(rows: StudyRows, raw: bytes | None) -> StudyRows:
    """``rows`` with ``raw`` as its record's bytes (the same object, changed)."""
    rows.study = (*rows.study[:_RAW], raw, *rows.study[_RAW + 1:])
    return rows


def _send(stream: BinaryIO, message: object) -> None:
    """Write one message and flush it to the other side."""
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)  # streamed: no copy of the whole message
    stream.flush()


def _receive(stream: BinaryIO) -> object:
    """The next message; EOFError when the other side has gone."""
    return pickle.load(stream)


class RecordWorker:
    """One worker process flattening pages of records, one page at a time, in the order sent.

    ``send`` a page, then ``receive`` it before sending the next (the pipes are never both full). Every method
    returns normally whatever happens to the process: ``receive`` gives None when the page must be flattened
    here instead, and from then on the worker is ``gone``.
    """

    def __init__(self, model_paths: dict[str, bool] | None):
        self.gone = False
        self._sent: list[bytes] = []
        self._process: subprocess.Popen | None = None
        try:
            # Its own session: a Ctrl-C at the terminal is the pull's to handle, and the worker ends when the pull
            # closes its input (or dies), whatever stops the pull.
            self._process = subprocess.Popen(
                [sys.executable, "-m", "trialsync.sync.prepare"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, start_new_session=True)
            _send(self._process.stdin, model_paths)
        except (OSError, ValueError):  # it could not start, or died at once: waited for, never left a zombie
            self.close()

    def send(self, raws: list[bytes]) -> None:
        """Hand the worker a page's records."""
        self._sent = raws
        if self.gone:
            return
        try:
            _send(self._process.stdin, raws)
        except (OSError, ValueError):
            self.close()

    def receive(self) -> list[Flattened] | None:
        """The flattened records of the page sent last, each holding the very bytes sent as its raw record, or
        None if the worker failed on it."""
        raws, self._sent = self._sent, []
        if self.gone:
            return None
        try:
            answer = _receive(self._process.stdout)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError, ImportError, IndexError):
            answer = None
        if not isinstance(answer, list) or len(answer) != len(raws):  # None: the worker could not flatten this page
            self.close()
            return None
        return [(_with_raw(rows, raw), found, nct_id) for (rows, found, nct_id), raw in zip(answer, raws)]

    def close(self) -> None:
        """End the worker (it ends at the end of its input) and wait for it."""
        self.gone = True
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: a data model's paths (or None), then pages of records until the input ends; each page
    answered with its flattened records, or None if any of them fails."""
    paths = _receive(requests)
    model = DataModel(paths) if paths else None
    while True:
        try:
            raws = _receive(requests)
        except EOFError:
            return
        try:
            with fewer_collections():
                # Sent back without the records' bytes, which the pull still has: half the bytes to copy.
                answer = [(_with_raw(rows, None), found, nct_id) for rows, found, nct_id in flatten_records(raws, model)]
        except Exception:  # the pull flattens the page itself and reports the failure as it always has
            answer = None
        del raws
        _send(answers, answer)
        del answer


def main() -> None:
    """Run as a worker on standard input and output; quiet whatever ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except BaseException:  # the pull has gone (a closed pipe) or stopped it: nothing to say to anyone
        pass


if __name__ == "__main__":
    main()
