"""Record transforms: pure functions from a raw study record to the rows trialsync stores."""

from .results import RESULT_COLUMNS
from .rows import (
    BOOLEAN_COLUMNS, LIST_COLUMNS, as_values, CHILD_COLUMNS, STUDY_COLUMNS, TRACKED_FIELDS, VIRTUAL_COLUMNS, NotAStudyRecord, StudyRows, cell_of,
    check_study_record, serialize, site_points, study_rows, virtual_value,
)

__all__ = ["RESULT_COLUMNS", "BOOLEAN_COLUMNS", "LIST_COLUMNS", "as_values", "CHILD_COLUMNS", "STUDY_COLUMNS", "TRACKED_FIELDS", "VIRTUAL_COLUMNS", "NotAStudyRecord",
           "StudyRows", "cell_of", "check_study_record", "serialize", "site_points", "study_rows",
           "virtual_value"]
