"""trialsync: a local SQLite mirror of the ClinicalTrials.gov studies you follow."""

__version__ = "0.1.0"
