"""What every publish-time rule reads: the package, its format_version and type, parsed files."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from package_storage.packages.validation.core import MANIFEST, _Package
from package_storage.packages.versions import Version


@dataclass
class Context:
    """What every rule needs: the package, its format_version and type, parsed documents."""

    pkg: _Package
    fv: Version
    package_type: str
    raw: Callable[[str], Any]
    _cache: dict[str, Any] = field(default_factory=dict)

    def doc(self, path: str) -> Any:
        """The parsed document at ``path`` (None when absent or unreadable)."""
        if path not in self._cache:
            value = self.raw(path) if self.pkg.is_file(path) else None
            self._cache[path] = value if isinstance(value, (dict, list)) else None
        return self._cache[path]

    def json(self, path: str) -> Any:
        if path not in self._cache:
            data = self.pkg.read(path)
            try:
                self._cache[path] = json.loads(data) if data is not None else None
            except ValueError:
                self._cache[path] = None
        return self._cache[path]

    @property
    def manifest(self) -> dict[str, Any]:
        m = self.doc(MANIFEST)
        return m if isinstance(m, dict) else {}

    @property
    def built(self) -> bool:
        """A built package: a zip (what elastic-package build produces and a registry receives).

        A folder is taken as a source package: a built folder cannot be told from a source
        folder without ``_dev``, and refusing a valid source package is the worse mistake."""
        return self.pkg.tree.kind == "zip"

    def data_stream_dirs(self) -> list[str]:
        return [ds.dir for ds in self.pkg.data_streams()]
