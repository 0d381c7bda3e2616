"""Domain exceptions and the exit codes the command line maps them to.

Lower layers raise these; only ``cli.py`` turns them into a line on stderr and an exit code.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h: another pull holds the lock, try again later
EXIT_INTERRUPTED = 130  # the shell's convention for a run stopped by Ctrl-C


class TrialsyncError(Exception):
    """An expected failure, described in one line for the person at the terminal."""

    exit_code = EXIT_FAILED


class UsageError(TrialsyncError):
    """An option or argument value that cannot be right (a malformed date, a topic with no search)."""

    exit_code = EXIT_USAGE


class NotFound(TrialsyncError):
    """A topic or study named by the user is not known (or an NCT id is malformed)."""


class ApiError(TrialsyncError):
    """The API could not be reached, or answered with an error, after every retry."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status of the API's answer, when there was one


class StoreError(TrialsyncError):
    """The database cannot be opened or written (not SQLite, damaged, locked, read-only)."""


class ImportFileError(TrialsyncError):
    """A file given to ``import`` is not what it claims to be."""


class LockBusy(TrialsyncError):
    """Another pull holds the database's write lock."""

    exit_code = EXIT_LOCKED


class PullInterrupted(TrialsyncError):
    """A pull was stopped by Ctrl-C or SIGTERM at a page boundary."""

    exit_code = EXIT_INTERRUPTED
