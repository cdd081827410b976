"""The management API: the store's operations over HTTP (JSON, OpenAPI 3.1), with tokens.

``app.py`` builds the FastAPI app (served under ``/api/v1/`` on its own listener by ``serve
--manage-address``); ``auth.py`` turns ``Authorization: Bearer SECRET`` into a
:class:`~package_storage.store.access.GuardedService` (the service acting for the token, its
scopes checked before each call); ``schemas.py`` is the JSON of every record (used by the app
to answer and by the client to read the answers back); ``errors.py`` renders errors as
``{"error": {"code": ..., "message": ...}}`` with the status of ``status.py``; ``uploads.py``
streams a package upload to disk under a size limit; ``events.py`` is the event feed (paged and
Server-Sent Events); ``client.py`` is :class:`~package_storage.store.access.StoreOperations`
over HTTP, for the CLI's ``--store URL``. No rule lives here: every route calls the service.

May import: ``serving``, ``transfer``, ``store``, ``registry``, ``packages``, ``errors``,
``status``, ``logs``. Must never import: ``cli``; nothing but ``cli`` imports this.
"""
