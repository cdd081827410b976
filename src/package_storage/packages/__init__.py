"""The package format: what an integration package is, independent of where it is stored.

The model (``Package``, trees), semver versions and constraints, YAML reading, the manifest
document builder, package-spec validation, categories, folder and zip trees, deterministic zips,
OpenPGP signatures and the Go-compatible JSON rendering that package documents are built for.

May import: ``package_storage.errors`` and ``package_storage.logs`` only.
Must never import it from here: everything else imports this; it imports none of
``registry``, ``store``, ``serving``, ``transfer`` or ``cli``.
"""
