"""The PostgreSQL backend: ``--state postgresql://user@host/db`` holds what a
state folder holds (journal, campaigns, suppressions, preferences, bounces) in
one database, behind the same protocols as SQLite (``state.store``).

The schema is versioned (``schema.py``): an empty database gets it on first
use, an older one is refused until ``digest state migrate``. The password
comes from libpq's usual places or DIGEST_STATE_PASSWORD, never from the URL.
"""
