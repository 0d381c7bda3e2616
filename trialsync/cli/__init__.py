"""The command line: the only layer that knows typer, consoles and exit codes. ``app`` (the root, and where
failures become exit codes), ``options`` (declared once), and one module per command group."""

from .app import app, main
from .topics import topics_app

__all__ = ["app", "main", "topics_app"]
