"""Serving a store: a store's distributions, tags and revisions as registry indexes.

Joins ``store`` (what is where) and ``registry`` (how it is answered): builds one
``RegistryIndex`` per distribution revision and swaps them when the catalog changes.

May import: ``store``, ``registry``, ``packages``, ``errors``, ``logs``.
Must never import: ``transfer`` or ``cli``; nothing but ``cli`` imports this.
"""
