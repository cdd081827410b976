"""The operator web UI: server-rendered HTML pages on the management listener.

Served at the root of ``serve --manage-address`` beside the management API (``/api/v1/``):
overview, stage, package, promotion preview, history, revisions and tags pages, and the
promote / remove / tag / roll back actions, each behind a confirmation step. Readable without
JavaScript (the pages carry none).

``app.py`` builds the Starlette app (routes, sign-in with a token, error pages) and
:func:`~package_storage.web.app.beside_api` puts it in front of the API app; ``pages.py``
gathers what each page shows from the service and ``actions.py`` the actions;
``session.py`` is the sign-in cookie and the CSRF token; ``headers.py`` the security
headers (a strict Content-Security-Policy); ``templates.py`` the Jinja2 environment
(autoescape on, every package-provided string escaped); ``readme.py`` renders a package
README (Markdown, then sanitized: package content is untrusted); ``cache.py`` keeps what never
changes (a revision's entries, an artifact's summary and documents). No rule lives here:
every read and every action calls the token's :class:`~package_storage.store.access.GuardedService`,
the same service the management API and the CLI call, and shows its messages.

May import: ``store``, ``packages``, ``errors``, ``status``, ``logs``. Must never import:
``cli``, ``manage`` (a sibling); nothing but ``cli`` imports this.
"""
