"""``python -m trialsync``."""

from .cli import main

main()
