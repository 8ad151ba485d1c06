"""The command line: click commands only.

Each command parses its options, resolves Settings into the typed options of
one use case (Source, IssueOptions, RenderOptions, SendRequest), calls it,
and turns a DigestError into one line and an exit code.

May import: delivery, audience, email, content, and the modules below them.
Must not: hold logic a library caller would need, or import state directly.
Nothing imports cli.
"""
