"""Render a Digest into subject, inlined HTML and plain text.

Templates load through a ChoiceLoader: the user's ``--templates`` folder
first, then the package's own, so any single template can be overridden by
name. HTML escaping is on by default for every template, ``*.html.j2``
included (``select_autoescape`` would miss it); only ``*.txt.j2`` templates,
whose output is not HTML, render without it. Undefined names are errors.

Per-recipient values are not known here: templates see ``recipient.*`` as
placeholder tokens, and ``message`` substitutes each recipient's values into
the finished output. That keeps the expensive steps (Jinja, premailer) to
once per digest variant.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
import markupsafe

from digest.content.compose import Digest
from digest.errors import TemplateError

TEMPLATES = {"html": "digest.html.j2", "text": "digest.txt.j2", "subject": "subject.txt.j2"}
PLACEHOLDER_FIELDS = ("greeting", "name", "email", "unsubscribe_url", "preferences_url",
                      "unsubscribe_token", "preferences_token")
# Private-use code points: valid in HTML and XML (so lxml keeps them), untouched
# by escaping, and never produced by the content itself (articles strip them).
TOKEN_OPEN, TOKEN_CLOSE = "\ue000", "\ue001"


def token(field: str) -> str:
    return f"{TOKEN_OPEN}{field}{TOKEN_CLOSE}"


@dataclass(frozen=True, slots=True)
class RecipientTokens:
    """What templates see as ``recipient``: a token per personal field.

    A link is its newsletter's static base followed by the recipient's token
    (see ``linked``), so only the short token is encoded per recipient; the
    plain tokens stand for whole links where no base is known.
    """

    greeting: str = token("greeting")
    name: str = token("name")
    email: str = token("email")
    unsubscribe_url: str = token("unsubscribe_url")
    preferences_url: str = token("preferences_url")

    @classmethod
    def linked(cls, unsubscribe_base: str, preferences_base: str) -> RecipientTokens:
        return cls(unsubscribe_url=unsubscribe_base + token("unsubscribe_token"),
                   preferences_url=preferences_base + token("preferences_token"))


@dataclass(frozen=True, slots=True)
class Rendered:
    """One digest variant, rendered and inlined, still holding recipient tokens."""

    subject: str
    html: str
    text: str


def package_templates() -> Path:
    """The templates shipped in the wheel, or the repository's when run from source."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def _autoescape(name: str | None) -> bool:
    return name is None or not name.endswith(".txt.j2")


def _longdate(value: datetime) -> str:
    return f"{value:%B} {value.day}, {value.year}"


def _markdown(text: str) -> markupsafe.Markup:
    """CommonMark to HTML with raw HTML escaped, so a note can link and
    emphasise but never inject markup."""
    from markdown_it import MarkdownIt  # only when a note is shown

    renderer = MarkdownIt("commonmark", {"html": False})
    return markupsafe.Markup(renderer.render(text))


def make_environment(user_dir: Path | None = None) -> jinja2.Environment:
    folders = ([user_dir] if user_dir else []) + [package_templates()]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(f) for f in folders]),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["longdate"] = _longdate
    env.filters["markdown"] = _markdown
    env.globals["searched"] = tuple(folders)
    return env


def render_template(env: jinja2.Environment, name: str, context: dict[str, object]) -> str:
    searched: tuple[Path, ...] = env.globals["searched"]  # type: ignore[assignment]
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(name, "not found", searched=searched) from exc
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or name}:{exc.lineno}"
        raise TemplateError(name, f"syntax error at {where}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        frame = _template_frame(exc)
        at = f" at {frame}" if frame else ""
        raise TemplateError(name, f"{exc.message}{at}; check the variable names") from exc
    except Exception as exc:  # templates are the user's code: {{ 1/0 }}, a bad filter
        frame = _template_frame(exc)
        at = f" at {frame}" if frame else ""
        raise TemplateError(name, f"{type(exc).__name__}: {exc}{at}") from exc


def _template_frame(exc: BaseException) -> str | None:
    """``path:line`` of the innermost template line in the traceback, which
    Jinja rewrites to point into the template file."""
    where, tb = None, exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def inline_css(html: str) -> str:
    """Inline every CSS rule; @media rules cannot be inlined and stay in <style>.

    lxml percent-encodes non-ASCII in URL attributes (``href``, ``src``), which
    would turn a recipient token in a link into ``%EE%80%80...`` that ``message``
    never finds. So tokens cross premailer as ASCII markers that lxml leaves
    alone and that no content can contain (they hold a hash of the page itself).
    """
    from premailer import Premailer  # heavy import: only when rendering

    nonce = hashlib.sha256(html.encode()).hexdigest()[:16]
    markers = {token(field): f"x-digest-{nonce}-{field}" for field in PLACEHOLDER_FIELDS}
    for tok, marker in markers.items():
        html = html.replace(tok, marker)
    inlined = str(
        Premailer(
            html,
            keep_style_tags=False,
            remove_classes=False,
            strip_important=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            allow_network=False,
        ).transform(pretty_print=False)
    )
    for tok, marker in markers.items():
        inlined = inlined.replace(marker, tok)
    return inlined


def _issue_context(digest: Digest) -> dict[str, object]:
    """What every template sees: the digest, and the subject's short names."""
    lead = digest.lead.article if digest.lead else None
    return {"digest": digest, "lead": lead, "count": len(digest.items), "name": digest.name,
            "date": _longdate(digest.as_of)}


def render_subject(env: jinja2.Environment, digest: Digest, template: str | None) -> str:
    """The subject from ``template`` (``--subject``) or subject.txt.j2. Both
    see ``lead`` (the first story's article), ``count``, ``name`` and ``date``."""
    context = _issue_context(digest)
    if template is None:
        return " ".join(render_template(env, TEMPLATES["subject"], context).split())
    try:
        # Not autoescaped: a subject is a header, not HTML; headers.py encodes it.
        compiled = env.overlay(autoescape=False).from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError("--subject", f"syntax error: {_one_line(exc)}") from exc
    try:
        # Whitespace collapsed: no CR or LF from a title or the template reaches the header.
        subject = " ".join(compiled.render(context).split())
    except Exception as exc:  # the user's template: {{ lead.titel }}, {{ 1/0 }}
        raise TemplateError("--subject", f"{_one_line(exc)}; it may use lead, count, name "
                            "and date") from exc
    if not subject:
        raise TemplateError("--subject", "renders an empty subject; use e.g. "
                            "'{{ lead.title }}'")
    return subject


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def render_digest(env: jinja2.Environment, digest: Digest,
                  recipient: RecipientTokens | None = None,
                  subject: str | None = None) -> Rendered:
    """``subject`` is the ``--subject`` template, if one was given."""
    # web: the archive renders the same template for everyone (digest/archive/pages.py).
    context = {**_issue_context(digest), "recipient": recipient or RecipientTokens(),
               "web": False}
    html = render_template(env, TEMPLATES["html"], context)
    text = render_template(env, TEMPLATES["text"], context)
    return Rendered(subject=render_subject(env, digest, subject), html=inline_css(html),
                    text=text)
