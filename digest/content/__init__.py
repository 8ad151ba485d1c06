"""Content: files in, a Digest out, as pure functions.

Owns the article readers and their field parsers, dates, summaries,
selection (IssueOptions, Criteria, campaign names) and composition.

May import: model, errors, files.
Must not import: email, audience, delivery, state or cli.
"""
