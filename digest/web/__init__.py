"""The web endpoint (``digest serve``): one-click unsubscribe, its Undo, and
the preferences page, checked with the same signed tokens the messages carry.

Owns the Starlette application, its pages (``templates/web/``), the
parsing of the small forms they post, and serving the web archive's folder
(``--archive``) as static files beside them.

May import: audience, email, content, model, errors, files.
Must not import: state or delivery (the state is reached through
audience.selfservice), nor cli. Only cli imports web.
"""
