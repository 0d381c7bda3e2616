"""Opening the database: ours or untouched. A file trialsync did not make, or one from a newer trialsync,
is refused before a byte of it is read by SQLite; read-only use never creates or writes anything; the
write lock is taken on the file's real path. Also: transactions, and what a SQLite error means."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import LockBusy, NotFound, StoreError

APPLICATION_ID = 0x54535943  # "TSYC" in the SQLite header: this file is a trialsync database
SCHEMA_VERSION = 10  # PRAGMA user_version once every migration has run (migrations.py checks it)
BUSY_TIMEOUT_SECONDS = 30.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEGACY_TABLES = {"topics", "studies", "pulls", "topic_studies", "changes", "_sqlite_migrations"}


def default_db_path() -> Path:
    """The database used when neither ``--db`` nor ``TRIALSYNC_DB`` is given."""
    from platformdirs import user_data_path

    return user_data_path("trialsync", appauthor=False) / "trialsync.db"


@dataclass(frozen=True)
class FileState:
    """What is at a database path, read from the file's first 100 bytes without SQLite."""

    kind: str  # missing | empty | ours | foreign | not-sqlite | directory | not-a-file | linked
    user_version: int = 0  # for "linked": the number of names


def inspect_file(path: Path) -> FileState:
    """Tell whether ``path`` is missing, empty, a trialsync database, or something that is not ours."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return FileState("missing")
    except OSError as exc:
        raise StoreError(f"cannot read database {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        return FileState("directory")
    if not stat.S_ISREG(info.st_mode):
        return FileState("not-a-file")
    if info.st_nlink > 1:
        # The lock and SQLite's own journal are kept beside a path: two names of one file would let two writers in.
        return FileState("linked", info.st_nlink)
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return FileState("missing")
    except OSError as exc:
        raise StoreError(f"cannot read database {path}: {exc.strerror or exc}") from None
    if not header:
        return FileState("empty")
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        return FileState("not-sqlite")
    user_version = int.from_bytes(header[60:64], "big")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == APPLICATION_ID:
        return FileState("ours", user_version)
    wal = header[18] == 2
    if application_id == 0 and user_version == 1 and _is_first_release_database(path, wal):
        return FileState("ours", user_version)
    return FileState("foreign", user_version)


def _is_first_release_database(path: Path, wal: bool) -> bool:
    """Whether an unmarked SQLite file is a database of trialsync's first release (schema 1, no application id).

    Read with ``immutable=1`` unless a WAL file is already there, so that nothing is created beside it.
    """
    immutable = wal and not Path(f"{path}-wal").exists() or not wal
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not _LEGACY_TABLES <= tables:
                return False
            return conn.execute(
                "SELECT count(*) FROM _sqlite_migrations WHERE migration_set = 'trialsync'").fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _refuse(path: Path, state: FileState) -> None:
    """Raise the error that says why ``path`` is not used, if it is not usable."""
    if state.kind == "directory":
        raise StoreError(f"cannot use database {path}: it is a directory")
    if state.kind == "not-a-file":
        raise StoreError(f"cannot use database {path}: it is not a regular file (a device, a pipe or a socket)")
    if state.kind == "linked":
        raise StoreError(f"cannot use database {path}: the file has {state.user_version} names (hard links); trialsync "
                         "locks a database by its name, so give it one name only (remove the other links)")
    if state.kind == "not-sqlite":
        raise StoreError(f"cannot use database {path}: it is not a SQLite database; trialsync leaves it untouched")
    if state.kind == "foreign":
        raise StoreError(f"cannot use database {path}: it is a SQLite database that trialsync did not make; "
                         "trialsync leaves it untouched (choose another file with --db)")
    if state.kind == "ours" and state.user_version > SCHEMA_VERSION:
        raise StoreError(f"cannot use database {path}: it was made by a newer trialsync (schema {state.user_version}, "
                         f"this one knows up to {SCHEMA_VERSION}); upgrade trialsync. The file was left untouched")


def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
    # Autocommit: every transaction is explicit (see ``transaction``).
    conn = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False,
                           isolation_level=None)
    return conn


def open_for_reading(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to an existing trialsync database at ``path``.

    Creates nothing: a missing path raises NotFound. A database of an older schema is first brought up
    to date (it is ours, and every command of this release needs its shape).
    """
    path = Path(path).expanduser()
    state = inspect_file(path)
    if state.kind in ("missing", "empty"):
        raise NotFound(f"no trialsync database at {path} yet: `trialsync pull` or `trialsync import FILE` makes one")
    _refuse(path, state)
    if state.user_version < SCHEMA_VERSION:
        with write_lock(path), open_for_writing_locked(path):
            pass
    try:
        conn = _connect(f"{path.resolve().as_uri()}?{_reading_mode(path)}", uri=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise describe_error(exc, path) from None
    if version > SCHEMA_VERSION:
        conn.close()
        _refuse(path, FileState("ours", version))
    return conn


def _reading_mode(path: Path) -> str:
    """The URI parameters that read everything committed to the database at ``path``, or StoreError saying
    in one line why that cannot be done here. Never a way of reading that could show an older state.

    A pull's last commits may still be in the ``-wal`` file beside the database (another user's pull, or one
    that was killed before it folded them in). SQLite reads them read-only only through the ``-shm`` file:
    it uses a readable one as it is, and makes a missing one only where it may create files. Opened with
    ``immutable=1`` it would ignore the ``-wal`` file and silently show the state before those commits, so
    that is done only when there is no ``-wal`` file (or an empty one) and the folder cannot be written:
    then the database file holds every commit, and SQLite could not open it any other way.
    """
    real = path.resolve()
    wal, shm, folder = Path(f"{real}-wal"), Path(f"{real}-shm"), real.parent
    try:
        wal_size = wal.stat().st_size
    except FileNotFoundError:
        wal_size = 0
    except OSError as exc:
        raise StoreError(f"cannot read database {path}: cannot look at its {wal} file "
                         f"({exc.strerror or exc}); ask its owner to give you access to {folder}") from None
    pull = f"`trialsync pull --db {real}`"
    if wal_size:
        for side, what in ((wal, "which holds commits not yet in the database file"),
                           (shm, f"which SQLite needs to read the commits in {wal.name}")):
            try:
                with open(side, "rb"):
                    pass
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot read database {path}: its {side} file ({what}) cannot be read: "
                                 f"{exc.strerror or exc}; ask its owner to let you read it, or to run {pull}, which "
                                 "folds those commits into the database file") from None
    if os.access(folder, os.W_OK):
        return "mode=ro"
    if not wal_size:
        return "mode=ro&immutable=1"
    if not shm.exists():
        raise StoreError(f"cannot read database {path}: its {wal} file holds commits not yet in the database "
                         f"file, and SQLite reads them only through a {shm.name} file, which you may not create in "
                         f"{folder}; ask its owner to run {pull}, which folds them in, or to let you write to that "
                         "folder")
    return "mode=ro"


def open_as_is(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to the trialsync database at ``path`` whatever its schema (older ones are not
    migrated, newer ones may be looked at), for ``doctor``. Creates, migrates and locks nothing: with no
    ``-wal`` file beside it (no writer has it open) it is read ``immutable=1``, so that SQLite makes no
    ``-wal`` or ``-shm`` file either. StoreError when it is missing or not ours."""
    path = Path(path).expanduser()
    state = inspect_file(path)
    if state.kind in ("missing", "empty"):
        raise NotFound(f"no trialsync database at {path} yet: `trialsync pull` or `trialsync import FILE` makes one")
    if state.kind != "ours":
        _refuse(path, state)
    real = path.resolve()
    wal = Path(f"{real}-wal")
    try:
        mode = _reading_mode(path) if wal.exists() and wal.stat().st_size else "mode=ro&immutable=1"
        return _connect(f"{real.as_uri()}?{mode}", uri=True)
    except sqlite3.Error as exc:
        raise describe_error(exc, path) from None


def open_unchanged(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to the trialsync database at ``path`` that leaves every byte and file as it found
    them, for a long-lived reader that must never write (``trialsync mcp``): it reads as ``open_as_is`` does
    (no ``-wal`` or ``-shm`` file made, no lock taken) and takes only a database of this release's schema. An
    older one is refused (StoreError saying which command upgrades it), never migrated; a missing one is
    NotFound."""
    path = Path(path).expanduser()
    conn = open_as_is(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        conn.close()
        raise describe_error(exc, path) from None
    if version != SCHEMA_VERSION:
        conn.close()
        _refuse(path, FileState("ours", version))
        raise StoreError(f"database {path} was made by an older trialsync (schema {version}); it is read here "
                         "without writing, so it cannot be upgraded here: any other trialsync command, "
                         "`trialsync status-report` say, upgrades it in place")
    return conn


def lock_holder(db_path: str | os.PathLike) -> int | None:
    """The id of the process holding the database's write lock, 0 when it is held but the holder cannot be
    named, None when it is free; looked up without touching the lock (Linux's /proc/locks lists every
    ``flock``). Raises OSError where the system does not say (no /proc/locks)."""
    lock = database_files(db_path)[3]
    try:
        info = lock.stat()
    except FileNotFoundError:
        return None
    with open("/proc/locks", encoding="ascii", errors="replace") as handle:
        lines = handle.read().splitlines()
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 29042 fe:00:2152452 0 EOF"; a waiter's line starts "1: -> FLOCK".
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        device, _, inode = fields[5].rpartition(":")
        if inode.isdigit() and int(inode) == info.st_ino and _same_device(device, info.st_dev):
            return int(fields[4]) if fields[4].isdigit() else 0
    return None


def _same_device(text: str, device: int) -> bool:
    major, _, minor = text.partition(":")
    try:
        return int(major, 16) == os.major(device) and int(minor, 16) == os.minor(device)
    except ValueError:
        return False


@contextmanager
def open_for_writing(path: str | os.PathLike, wait: float = 0.0) -> Iterator[sqlite3.Connection]:
    """Hold the write lock and a read-write connection to the trialsync database at ``path``, creating it
    (and its folder) when missing and migrating it when older. A file that is not ours is refused before
    the lock file is made beside it."""
    path = Path(path).expanduser()
    _refuse(path, inspect_file(path))
    with write_lock(path, wait), open_for_writing_locked(path) as conn:
        yield conn


@contextmanager
def open_for_writing_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """The read-write connection of ``open_for_writing``; call only while holding the write lock."""
    state = inspect_file(path)  # again, now that nobody else can be creating it
    _refuse(path, state)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Absolute, so that SQLite built with SQLITE_USE_URI cannot read a name like "file:x.db" as a URI.
        conn = _connect(str(path.absolute()))
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from None
    try:
        if state.kind in ("missing", "empty"):
            # The first write marks the file as ours, so that a crash before the tables exist leaves a file
            # the next run recognises and finishes, not a foreign-looking empty database.
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            _refuse(path, FileState("ours", version))
        if version < SCHEMA_VERSION:
            from .migrations import migrate

            for nct_id, field in migrate(conn):
                sys.stderr.write(f"trialsync: {nct_id}: {field} is not of the shape the API's spec gives it; "
                                 "what trialsync derives from it is left empty (the record is kept as it is)\n")
        from .studies import heal_search_index

        if heal_search_index(conn):
            sys.stderr.write(f"trialsync: the full-text index of {path} had been set aside by another program; "
                             "rebuilt it\n")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL keeps the database consistent through a crash; at worst the last commits are lost.
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise describe_error(exc, path) from None
    except BaseException:
        conn.close()
        raise
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one write transaction (or inside the one already open): all of it or none of it."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is damaged: its error code, or its words for it ("malformed JSON" from
    a JSON function is about a value, not the file)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    lowered = str(exc).lower()
    return "disk image is malformed" in lowered or "not a database" in lowered or "corrupt" in lowered


def describe_error(exc: sqlite3.Error, path: str | os.PathLike | None = None) -> StoreError:
    """A SQLite error as one line saying what happened to the database."""
    text = str(exc)
    lowered = text.lower()
    where = f"database {path}" if path else "the database"
    if "disk is full" in lowered:  # SQLite says "database or disk is full"
        what = f"the disk holding {where} is full"
    elif "readonly" in lowered or "read-only" in lowered:
        what = f"{where} is read-only (check the file's and its folder's permissions)"
    elif _is_damage(exc):
        what = f"{where} is damaged (`sqlite3 FILE 'PRAGMA integrity_check'` says where)"
    elif "locked" in lowered or "busy" in lowered:
        what = f"{where} is locked by another program"
    elif "unable to open" in lowered:
        what = f"cannot open {where}"
    elif "disk i/o" in lowered:
        what = f"reading or writing {where} failed (disk I/O error)"
    else:
        what = f"{where} failed"
    return StoreError(f"{what}: {text}")


def database_path(conn: sqlite3.Connection) -> str | None:
    """The file behind ``conn`` (None in memory)."""
    return conn.execute("PRAGMA database_list").fetchone()[2] or None


def open_reader(conn: sqlite3.Connection) -> sqlite3.Connection | None:
    """A second, read-only connection to ``conn``'s file, usable while another thread writes (WAL)."""
    path = database_path(conn)
    if not path:
        return None
    return sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True, check_same_thread=False)


def database_files(db_path: str | os.PathLike) -> list[Path]:
    """Every file that makes up the database at ``db_path`` (by its real path): the file itself, SQLite's
    ``-wal`` and ``-shm`` files and trialsync's lock file, whether they exist yet or not."""
    path = Path(db_path).expanduser().resolve()
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")]


@contextmanager
def write_lock(db_path: str | os.PathLike, wait: float = 0.0) -> Iterator[None]:
    """Hold the database's write lock, waiting up to ``wait`` seconds; else raise LockBusy.

    The lock file is ``<real path>.lock``: a symlink or another spelling of the same file shares it. The
    operating system releases the lock when its holder dies, so a killed pull never leaves it stuck.
    """
    from filelock import FileLock, Timeout

    path = Path(db_path).expanduser().resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock")
        lock.acquire(timeout=max(wait, 0.0))
    except Timeout:
        waited = f" after waiting {wait:g}s" if wait > 0 else ""
        raise LockBusy(f"another trialsync pull is writing to {path}{waited}; try again later or use --wait") from None
    except OSError as exc:
        raise StoreError(f"cannot lock database {path}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()


_CHUNK = 500  # bound parameters per IN (...) query


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def select_in(conn: sqlite3.Connection, sql: str, ids: Sequence[str], *before) -> list[tuple]:
    """Rows of ``sql`` (with ``{marks}`` for the placeholders of ``ids``), ``ids`` taken a chunk at a time."""
    rows: list[tuple] = []
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        rows.extend(conn.execute(sql.format(marks=marks), [*before, *chunk]).fetchall())
    return rows
