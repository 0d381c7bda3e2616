"""Rendering plain data for its reader: ``tables`` (one renderer for every list), ``formats`` (JSON, JSON
lines), ``words`` (changes in words), ``status``, ``changes`` and ``studies``."""
