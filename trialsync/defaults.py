"""Every default in one place: the built-in topic, how the API is asked (address, rate, tries, deadlines,
size of an answer), and which pull outcomes count as complete. Each layer reads its defaults from here."""

DEFAULT_TOPIC_NAME = "stem-cell-spine"  # the topic `trialsync pull` follows when no topic is stored

DEFAULT_API_URL = "https://clinicaltrials.gov/api/v2"
DEFAULT_RATE = 50  # requests a minute: the service answers 429 past about 50 from one address
DEFAULT_ATTEMPTS = 5  # tries of one request before a transient fault fails the pull
DEFAULT_BACKOFF = 1.0  # seconds before the first retry; doubled each time up to the client's max_backoff
DEFAULT_DEADLINE = 120.0  # seconds for one whole answer; a page of 1,000 full records is tens of MB
DEFAULT_MAX_RESPONSE_MB = 64  # the largest body read (decompressed); a page of 1,000 full records is tens of MB
DEFAULT_PAGE_SIZE = 1000  # the API's maximum; larger values are quietly cut to it
DEFAULT_LIST_EVERY = 7  # a large topic's full listing (ids and statuses) every this many incremental pulls
DEFAULT_REFRESH_DAYS = 30  # each study is fetched again at least this often, a share of the topic each night

# Outcomes of a pull or import after which the store equals what the API (or the file) served.
COMPLETE_OUTCOMES = ("complete", "unchanged")

FEED_ENTRIES = 100  # the newest entries an Atom feed keeps (one per study and pull)
