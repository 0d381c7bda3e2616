"""Record transforms: pure functions from a raw study record to the rows trialsync stores."""

from .rows import (
    CHILD_COLUMNS, STUDY_COLUMNS, TRACKED_FIELDS, NotAStudyRecord, StudyRows, check_study_record, serialize, study_rows,
)

__all__ = ["CHILD_COLUMNS", "STUDY_COLUMNS", "TRACKED_FIELDS", "NotAStudyRecord", "StudyRows", "check_study_record",
           "serialize", "study_rows"]
