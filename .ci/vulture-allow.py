# Names vulture reports that are used, though not by a call it can see (tests/test_layout.py runs vulture with
# this file): signal handler parameters, enum members typer reads, typer commands and the MCP server's tools,
# resources and prompt registered by decorator,
# migrations sqlite-utils runs by registration, a module __getattr__, the exit code 0 named for readers.
_.signum, _.frame, _.tb  # signal handlers and __exit__ take these whether they use them or not
_.nl, _.markdown, _.start_year, _.mi, _.nct, _.relevance  # members of typer's Enum choices
_.bash, _.zsh, _.fish  # the shells of `trialsync completion`, an Enum typer reads
_.root, _.topics_add, _.topics_list, _.topics_show, _.topics_remove  # typer commands
_.search_studies, _.get_study, _.study_results, _.study_resource, _.topic_resource, _.changes_since  # MCP
_.m001_initial_schema, _.m002_sync_state_per_topic, _.m003_derived_fields_and_search, _.m004_one_shape_of_schema_3
_.m005_digest_backlog, _.m006_browsable_database, _.m007_results, _.m008_membership_ways_and_fetch_times
_.m009_schema_drift
_.m010_search_index_deferred_by_the_writer
__getattr__  # trialsync.cli's lazy app
EXIT_OK
