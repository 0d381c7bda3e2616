"""The ClinicalTrials.gov API v2 client: ``client`` sends requests, ``pages`` follows and checks listings."""

from .client import (
    DEFAULT_API_URL, DEFAULT_ATTEMPTS, DEFAULT_DEADLINE, DEFAULT_MAX_RESPONSE_MB, DEFAULT_RATE, ApiClient, RequestPacer,
    ResponseTooLarge,
)
from .pages import DEFAULT_PAGE_SIZE, LISTING_FIELDS, ListingTally, Page, iter_pages, listed_study, parse_study

__all__ = ["DEFAULT_API_URL", "DEFAULT_ATTEMPTS", "DEFAULT_DEADLINE", "DEFAULT_MAX_RESPONSE_MB", "DEFAULT_PAGE_SIZE",
           "DEFAULT_RATE", "LISTING_FIELDS", "ApiClient", "ListingTally", "Page", "RequestPacer", "ResponseTooLarge",
           "iter_pages", "listed_study", "parse_study"]
