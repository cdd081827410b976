"""One exception tree for the whole project.

Every error carries a stable ``code`` (a short snake_case identifier that scripts and the
management API can rely on) and a human message that names the input and the rule that was
broken. No HTTP knowledge here: the one mapping to statuses lives in ``status.py``.
"""

from __future__ import annotations


class PackageStorageError(Exception):
    """Base of every error raised on purpose by package-storage."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- input parsing -------------------------------------------------------------------------


class InvalidInputError(PackageStorageError):
    """Input that does not parse or is out of range."""

    code = "invalid_input"


class VersionError(InvalidInputError):
    """A version or constraint string that does not parse (message = the semver library text)."""

    code = "invalid_version"


class QueryError(InvalidInputError):
    """A /search or /categories query parameter that fails validation (spec §3.3 texts)."""

    code = "invalid_query"


class ConfigError(InvalidInputError):
    """Configuration file, flag or environment value that is not acceptable."""

    code = "invalid_config"


# --- packages --------------------------------------------------------------------------------


class PackageError(PackageStorageError):
    """A package that cannot be read or loaded (structural problem)."""

    code = "invalid_package"

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.detail = message


class ValidationError(PackageError):
    """A package that breaks a package-spec rule checked at publish/load time."""

    code = "validation_failed"

    def __init__(self, message: str, *, path: str = "", rule: str = "") -> None:
        super().__init__(message, path=path)
        self.rule = rule


class UnsafePackageError(PackageStorageError):
    """A package refused by the archive-safety gate or a size limit (``docs/safety.md``).

    ``rule`` is the stable rule code (``zip-unsafe-path``, ``limit-file-size``, ...), ``entry``
    the file inside the package it is about ("" for the whole package). The message is one
    line: ``<input>: entry '<entry>' <what> [<rule>]``. Not a :class:`PackageError` on purpose:
    code that collects a package's problems (validation) must not swallow it; it stops the
    whole operation.
    """

    code = "unsafe_package"

    def __init__(self, message: str, *, path: str = "", entry: str = "", rule: str) -> None:
        text = f"entry {entry!r} {message}" if entry else message
        detail = f"{text} [{rule}]"
        super().__init__(f"{path}: {detail}" if path else detail)
        self.path = path
        self.detail = detail
        self.entry = entry
        self.rule = rule
        self.what = message

    def within(self, location: str) -> UnsafePackageError:
        """This refusal named after the package at ``location`` when it names only a file of
        it (``data_stream/x/fields/f.yml``: the YAML reader does not know the package)."""
        if not self.path or self.path.startswith(location):
            return self
        return UnsafePackageError(
            self.what, path=location, entry=self.entry or self.path, rule=self.rule
        )


class SignatureError(PackageStorageError):
    """A missing or bad signature."""

    code = "signature_error"


# --- lookups ---------------------------------------------------------------------------------


class NotFoundError(PackageStorageError):
    """Something that was asked for does not exist."""

    code = "not_found"


# --- rules of the store ----------------------------------------------------------------------


class PolicyError(PackageStorageError):
    """A stage policy refuses the operation (overwrite, remove, frozen stage, ...)."""

    code = "policy_refused"


class ConflictError(PackageStorageError):
    """The operation conflicts with the current state (tag exists, concurrent change, ...)."""

    code = "conflict"


class StorageError(PackageStorageError):
    """The catalog or blob store failed or is inconsistent."""

    code = "storage_error"


class SchemaVersionError(StorageError):
    """The store's catalog schema is older or newer than this package-storage (the message
    names the command to run: ``package-storage migrate`` or an upgrade)."""

    code = "schema_version"


class UnavailableError(StorageError):
    """A backend (the S3 blob store, a database server) that cannot be reached right now:
    retrying later may work. HTTP 503 on the read path."""

    code = "unavailable"


# --- access (management API) -------------------------------------------------------------------


class AuthenticationError(PackageStorageError):
    """A request without a usable token (missing, unknown, expired or revoked)."""

    code = "unauthenticated"


class ForbiddenError(PackageStorageError):
    """A valid token that lacks the scope an operation needs (the message names the scope)."""

    code = "missing_scope"

    def __init__(self, message: str, *, scope: str = "") -> None:
        super().__init__(message)
        self.scope = scope


class TooLargeError(InvalidInputError):
    """An upload or request body above the configured size limit."""

    code = "too_large"


# --- transfer --------------------------------------------------------------------------------


class UpstreamError(PackageStorageError):
    """An upstream registry (``mirror``) failed to answer, or answered something unusable."""

    code = "upstream_error"


class BundleError(PackageStorageError):
    """An export bundle that does not verify (checksums, bundle.json, signatures): refused
    whole. ``rule`` is the stable rule code shown in brackets at the end of the message."""

    code = "bundle_refused"

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(f"{message} [{rule}]")
        self.rule = rule
