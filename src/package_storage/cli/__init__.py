"""The ``package-storage`` command line: one module per command group.

Commands only parse their arguments, call the service (or the serving and transfer layers) and
print the result; no rule lives here.

May import: everything below it. Must never be imported by any other part of package_storage.
"""
