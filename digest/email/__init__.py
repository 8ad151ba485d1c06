"""Email: a Digest in, wire-ready bytes out.

Owns rendering (Jinja2 + premailer), MIME and header encoding, per-recipient
messages, variants per preference set, the link module (links.py) and the
message-wrapping seam (wrap.py), and the build use case.

May import: content, model, errors, files.
Must not import: audience, delivery, state or cli.
"""
