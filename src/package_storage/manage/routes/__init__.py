"""The routes of the management API, one module per resource; each parses, calls one
:class:`~package_storage.store.access.GuardedService` method and renders (``schemas.py``)."""
