"""Exports, written as they are read: flattened studies as CSV, JSON or JSON lines, or raw records as a
``ctg-studies.json`` array; and any file written whole or not at all."""

from __future__ import annotations

import csv
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO, TypeVar

import orjson

from ..errors import TrialsyncError, UsageError
from .tables import csv_value

T = TypeVar("T")


def write_export(items: Iterable, kind: str, out: TextIO) -> int:
    """Write ``items`` to ``out``: dicts as ``csv``, ``json`` (an array) or ``nl`` (JSON lines), or raw record
    texts as ``raw`` (a JSON array holding each record exactly as stored). Returns how many were written."""
    count = 0
    if kind == "csv":
        writer = None
        for row in items:
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow({key: csv_value(value) for key, value in row.items()})
            count += 1
        return count
    if kind == "nl":
        for row in items:
            out.write(orjson.dumps(row).decode() + "\n")
            count += 1
        return count
    out.write("[")
    for item in items:
        out.write(",\n" if count else "\n")
        out.write(item if kind == "raw" else orjson.dumps(item).decode())
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_results_export(tables: Iterable[tuple[str, list[str], Iterable[tuple]]], kind: str, out: TextIO) -> int:
    """Write results tables (``(table, columns, rows)`` each) to ``out``: ``json``, one document mapping each
    table to its rows as objects; ``nl``, one object per row with its ``table``. Returns how many rows."""
    count = 0
    if kind == "nl":
        for table, columns, rows in tables:
            for row in rows:
                out.write(orjson.dumps({"table": table, **dict(zip(columns, row))}).decode() + "\n")
                count += 1
        return count
    out.write("{")
    for index, (table, columns, rows) in enumerate(tables):
        out.write(f"{',' if index else ''}\n{orjson.dumps(table).decode()}: [")
        first = True
        for row in rows:
            out.write(("\n" if first else ",\n") + orjson.dumps(dict(zip(columns, row))).decode())
            first = False
            count += 1
        out.write("\n]" if not first else "]")
    out.write("\n}\n")
    return count


def write_results_folder(folder: Path, tables: Iterable[tuple[str, list[str], Iterable[tuple]]], names: list[str],
                         force: bool, protected: Iterable[Path] = ()) -> int:
    """Write each results table as ``folder/<table>.csv`` (the folder is made when missing), all of the files or
    none (``write_all_whole``); a file there is replaced only with ``force``. ``names``: the tables, to check
    every target before anything is written. Returns how many rows in all."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; --results --format csv writes one CSV file per table into one")
    protected = list(protected)
    for name in names:
        check_export_target(folder / f"{name}.csv", force, protected)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make folder {folder}: {exc.strerror or exc}") from None
    written = write_all_whole([(folder / f"{table}.csv",
                                lambda out, columns=columns, rows=rows: _write_csv_rows(out, columns, rows))
                               for table, columns, rows in tables])
    return sum(written)


def _write_csv_rows(out: TextIO, columns: list[str], rows: Iterable[tuple]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([csv_value(value) for value in row])
        count += 1
    return count


def check_export_target(output: Path, force: bool, protected: Iterable[Path] = ()) -> None:
    """UsageError unless ``output`` can take an export: a new file, an existing one with ``force``, or a
    device or pipe (``/dev/stdout``, a FIFO), which is written where it is and never replaced. A file of
    ``protected`` (the database and its side files), under any name, is refused even with ``force``."""
    if _is_stream(output):
        return
    try:
        real = output.resolve()
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a symlink loop
        raise UsageError(f"{output} is a symlink loop; name a file to write") from None
    for kept in protected:
        if real == kept or _same_file(output, kept):
            raise UsageError(f"{output} is part of the database ({kept.name}); trialsync never writes over it")
    if output.is_dir():
        raise UsageError(f"{output} is a directory; name a file to write")
    if output.exists() and not force:
        raise UsageError(f"{output} exists; choose another file or add --force to replace it")


def write_export_file(output: Path, items: Iterable, kind: str) -> int:
    """Write an export (as ``write_export``) to ``output`` as ``write_whole`` does. Returns how many were
    written; UsageError naming the file when it cannot be."""
    return write_whole(output, lambda out: write_export(items, kind, out))


def write_whole(output: Path, write: Callable[[TextIO], T]) -> T:
    """Call ``write(out)`` on a text stream (UTF-8) that lands in ``output`` whole or not at all: a new hidden
    partial file of a unique name beside the real target (a symlink is followed, not replaced), renamed over
    it at the end; a device or pipe is written in place. Returns what ``write`` returned; UsageError naming
    the file when it cannot be written, TrialsyncError when the device fails."""
    return write_all_whole([(output, write)])[0]


def write_all_whole(files: list[tuple[Path, Callable[[TextIO], T]]]) -> list[T]:
    """Write several files as ``write_whole`` writes one, all of them or none: every one goes to its partial
    file first, and only when all are written are they renamed over their targets (a failure removes the
    partial files, and no target is touched). Returns what each ``write`` returned."""
    partials: list[tuple[Path, Path]] = []
    results: list[T] = []
    try:
        for output, write in files:
            try:
                if _is_stream(output):
                    with open(output, "w", encoding="utf-8", newline="") as out:
                        results.append(write(out))
                    continue
                target = output.resolve() if output.is_symlink() else output
                mode = _mode_for(target)
                handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
                partials.append((Path(name), target))
                with open(handle, "w", encoding="utf-8", newline="") as out:
                    results.append(write(out))
                os.chmod(name, mode)  # mkstemp's file is private (0600); the written file is not
            except RuntimeError:
                raise UsageError(f"{output} is a symlink loop; name a file to write") from None
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EPIPE):  # the device failed, not the name
                    raise TrialsyncError(f"cannot write {output}: {exc.strerror or exc}") from None
                raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        for partial, target in partials:
            partial.replace(target)
    except BaseException:
        for partial, _ in partials:
            _remove_quietly(partial)
        raise
    return results


def _mode_for(target: Path) -> int:
    """The mode an export gets: the replaced file's own, else what the umask gives a new file."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _is_stream(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # its folder may not exist or not be a folder: then there is nothing to remove
        pass
