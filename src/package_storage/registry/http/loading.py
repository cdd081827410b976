"""Serving before everything is loaded: a registry that is empty until its contents arrive.

The server opens its listener at once and the packages (or a store's distributions) load in
the background. Until :meth:`LoadingRegistry.set` is called, :meth:`~LoadingRegistry.resolve`
finds nothing and :attr:`~LoadingRegistry.ready` is False, which the read app turns into
``503`` on every route, ``/health`` included (a readiness probe keeps traffic away); then the
loaded registry answers everything.
"""

from __future__ import annotations

from typing import Any, Protocol


class _Registry(Protocol):
    def resolve(self, prefix: str | None) -> Any: ...


class LoadingRegistry:
    """A :class:`~package_storage.registry.http.app.Registry` whose contents come later."""

    def __init__(self) -> None:
        self._inner: _Registry | None = None

    @property
    def ready(self) -> bool:
        return self._inner is not None

    def is_ready(self) -> bool:
        return self._inner is not None

    def set(self, registry: _Registry) -> None:
        """Serve ``registry`` from now on (one reference assignment)."""
        self._inner = registry

    @property
    def inner(self) -> Any:
        """The loaded registry (None while loading)."""
        return self._inner

    def resolve(self, prefix: str | None) -> Any:
        inner = self._inner
        return None if inner is None else inner.resolve(prefix)
