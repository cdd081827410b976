"""Package-spec validation: the load-time rules the registry applies and the publish-time rules.

* :func:`validate` (``core``): exactly what the reference registry checks when it loads a package
  with validation on (every package the reference accepts passes).
* :func:`validate_for_publish`: the load-time rules plus the package-spec's own rules for the
  package's ``format_version``: the file schemas of ``schemas/`` (compiled by ``schemas``), the
  folder layout (``layout``) and the semantic cross-file rules (``semantic``, ``fields``,
  ``kibana``, ``pipelines``). The spec's warnings are their own level: reported by
  :func:`spec_warnings`, refusing only with ``warnings_as_errors``.

Every problem is a :class:`Problem`: the file it is about, a stable rule code and one line of text
(rule codes are listed in docs/validation.md).
"""

from package_storage.packages.validation.core import Problem, validate
from package_storage.packages.validation.publish import (
    check_for_publish,
    spec_warnings,
    validate_for_publish,
)

__all__ = ["Problem", "check_for_publish", "spec_warnings", "validate", "validate_for_publish"]
