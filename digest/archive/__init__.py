"""The web archive: every sent issue as a static site (``digest archive``).

It owns the issue pages (the email's own template, rendered for everyone),
the article pages of stories without a link of their own, the paginated
index, the Atom feed and the sitemap, and writing them incrementally and
atomically under a manifest. It may import delivery (for the issues the
state records as sent), email and content, never cli, web or state; only
cli imports it.
"""
