"""The words of the change log, one place for each: the fields a change can be of, the events of a study's
membership of a topic, the reasons they carry, and how a person reads each field. The store writes them,
reports select by them and render words them; none spells one out itself."""

# Fields that are not a column of the study: a membership event, a note, a site or a publication.
MEMBERSHIP = "membership"  # a study joining (ADDED), leaving (LEFT) or rejoining (PRESENT) a topic
WARNING = "warning"  # a note about a record, such as a date that cannot move the watermark
SITE_ADDED, SITE_REMOVED, SITE_STATUS = "site_added", "site_removed", "site_status"  # item: the site
REFERENCE_ADDED = "reference_added"  # item: the PubMed id (or the citation's start)
RESULTS_DUE = "results_due"  # results became due (results_rule); new: the due date. Logged once per due date
RESULTS_POSTED = "results_first_posted"  # the column whose change from none is results being posted

# Membership events: a membership change's ``new`` value (its ``old`` is the state before).
ADDED, LEFT, PRESENT = "added", "left", "present"
JOINING = (ADDED, PRESENT)

# Reasons a membership event can carry.
SEARCH_CHANGED = "search"  # the topic's search was replaced

# How a person reads each field.
FIELD_NAMES = {
    "overall_status": "status",
    "last_known_status": "last known status",
    "why_stopped": "why stopped",
    "enrollment_count": "enrollment",
    "start_date": "start date",
    "primary_completion_date": "primary completion date",
    "completion_date": "completion date",
    "start_date_type": "start date",
    "primary_completion_date_type": "primary completion date",
    "completion_date_type": "completion date",
    "phases": "phases",
    RESULTS_POSTED: "results first posted",
    RESULTS_DUE: "results due",
    "location_count": "sites",
    MEMBERSHIP: "topic membership",
    SITE_ADDED: "site added",
    SITE_REMOVED: "site removed",
    SITE_STATUS: "site status",
    REFERENCE_ADDED: "publication added",
}
STATUS_FIELDS = {"overall_status", "last_known_status", SITE_STATUS}
DATE_TYPE_FIELDS = {"start_date_type", "primary_completion_date_type", "completion_date_type"}
