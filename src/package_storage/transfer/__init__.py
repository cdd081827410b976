"""Moving packages in and out of a store: import (folders, zips, bundles), import-git, export.

Every write goes through ``store.service`` (the rules live there, not here).

May import: ``store``, ``packages``, ``errors``, ``logs``.
Must never import: ``registry``, ``serving`` or ``cli``; nothing but ``cli`` imports this.
"""
