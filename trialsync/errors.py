"""Domain exceptions and the exit codes the command line maps them to.

Lower layers raise these; only the command line turns them into a line on stderr and an exit code.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h: another pull holds the lock, try again later
EXIT_INTERRUPTED = 130  # the shell's convention for a run stopped by Ctrl-C or SIGTERM


class TrialsyncError(Exception):
    """An expected failure, described in one line for the person at the terminal."""

    exit_code = EXIT_FAILED


class UsageError(TrialsyncError):
    """An option or argument value that cannot be right (a malformed date, a topic with no search)."""

    exit_code = EXIT_USAGE


class InvalidValue(UsageError):
    """A value the query cannot take, told in the domain's words; ``what`` names the value ("place",
    "distance", "search", "sort") so that the command line can say which of its options held it."""

    def __init__(self, what: str, message: str):
        super().__init__(message)
        self.what = what


class NotFound(TrialsyncError):
    """A topic or study named by the user is not known (or an NCT id is malformed)."""


class ApiError(TrialsyncError):
    """The API could not be reached, or answered with an error, after every retry."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status of the API's answer, when there was one


class ApiUnreachable(ApiError):
    """The API could not be reached at all (its host name does not resolve, or it refuses connections) before it
    had answered once in this run: the machine is most likely offline, so no retry is worth waiting for.
    ``reason`` says which, in a few words ("host name not found")."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


class IncompleteListing(ApiError):
    """A listing that cannot be proven complete: fewer studies than its totalCount, an id twice, a broken
    token chain. Nothing may be concluded from it about studies it does not hold."""


class RecordError(TrialsyncError):
    """A study record that breaks the API's spec: names its NCT id and the field."""


class StoreError(TrialsyncError):
    """The database cannot be opened or written (not ours, newer, damaged, read-only, disk full)."""


class ImportFileError(TrialsyncError):
    """A file given to ``import`` is not what it claims to be."""


class LockBusy(TrialsyncError):
    """Another pull holds the database's write lock."""

    exit_code = EXIT_LOCKED


class Interrupted(TrialsyncError):
    """A pull or import was stopped by Ctrl-C or SIGTERM; what was written is whole pages only."""

    exit_code = EXIT_INTERRUPTED
