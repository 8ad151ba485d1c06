"""The storage seam: the delivery journal, campaigns, the suppression list and
the one-run-at-a-time lock, behind the protocols of ``state.store`` (opened
with ``open_store``). SQLite (``state.sqlite``) is the embedded backend;
PostgreSQL (``state.postgres``, for a ``postgresql://`` --state) is the shared
one, with its versioned schema; ``state.copy`` moves a state between the two.

state/ imports only digest.errors and digest.model. Only delivery/ and
audience/ import it: content/ and email/ know nothing of storage, and cli/
calls their use cases (``send``, ``status``, ``close_campaign``,
``suppress_addresses``...) rather than the store.
"""
