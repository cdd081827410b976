"""The package-spec's rules about versions and maturity.

* ``version-prerelease`` (all format_versions): below 1.0.0 a version has no prerelease tag
  (it is a technical preview already); a prerelease tag is ``next``, ``SNAPSHOT``, or ``beta``,
  ``rc``, ``preview`` optionally followed by a number (``beta1``, ``rc.2``).
* ``profiles-not-ga`` (integration): a GA package (1.0.0 or later, no prerelease) has no
  ``profiles`` data stream (a technical preview type).
* ``spec-beta-feature`` (content packages before format_version 3.3.1, when content packages
  were a beta feature of the spec): refused for GA packages, and from format_version 3.0.0 also
  for others (code PSR00002).
* ``changelog-link`` : a github.com link of a changelog entry ends in a positive issue or pull
  request number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from package_storage.errors import VersionError
from package_storage.packages.validation.context import Context
from package_storage.packages.validation.core import CHANGELOG, MANIFEST, Problem
from package_storage.packages.versions import Version

LITERAL_PRERELEASES = ("next", "SNAPSHOT")
NUMBERED_PRERELEASES = ("beta", "rc", "preview")
_NUMBER = r"(([0-9]|[.-][0-9A-Za-z])([0-9A-Za-z-.]*[0-9A-Za-z])?)?"
_NUMBERED = re.compile(rf"^({'|'.join(NUMBERED_PRERELEASES)}){_NUMBER}$")
CONTENT_GA_SINCE = Version.parse_strict("3.3.1")


def _version(ctx: Context) -> Version | None:
    text = ctx.manifest.get("version")
    try:
        return Version.parse_strict(str(text)) if text is not None else None
    except VersionError:
        return None


def is_ga(version: Version) -> bool:
    return not version.prerelease and version.major >= 1


def rule_prerelease(ctx: Context) -> Iterator[Problem]:
    version = _version(ctx)
    if version is None or not version.prerelease:
        return
    if version.major == 0:
        yield Problem(
            MANIFEST,
            "version-prerelease",
            f"versions below 1.0.0 are considered technical previews, please remove prerelease "
            f"tag (version: {version})",
        )
        return
    tag = version.prerelease
    if tag in LITERAL_PRERELEASES or _NUMBERED.match(tag):
        return
    yield Problem(
        MANIFEST,
        "version-prerelease",
        f"prerelease tag ({tag}) should be one of [{', '.join(LITERAL_PRERELEASES)}], or one of "
        f"[{', '.join(NUMBERED_PRERELEASES)}] followed by numbers",
    )


def rule_profiles_not_ga(ctx: Context) -> Iterator[Problem]:
    version = _version(ctx)
    if version is None or not is_ga(version):
        return
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        if isinstance(doc, dict) and doc.get("type") == "profiles":
            yield Problem(
                ds.manifest_path,
                "profiles-not-ga",
                "profiles data type cannot be used in GA packages",
            )


def rule_spec_beta_feature(ctx: Context) -> Iterator[Problem]:
    if ctx.package_type != "content" or ctx.fv >= CONTENT_GA_SINCE:
        return
    version = _version(ctx)
    if version is None:
        return
    if is_ga(version):
        yield Problem(
            MANIFEST,
            "spec-beta-feature",
            "spec for [content packages] defines beta features which can't be enabled for "
            "packages with a stable semantic version",
        )
    elif ctx.fv.major >= 3:
        yield Problem(
            MANIFEST,
            "spec-beta-feature",
            "package with non-stable semantic version and active beta features (content "
            "packages) can't be released as stable version. (PSR00002)",
        )


def rule_changelog_links(ctx: Context) -> Iterator[Problem]:
    entries = ctx.doc(CHANGELOG)
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            link = change.get("link") if isinstance(change, dict) else None
            if not isinstance(link, str):
                continue
            try:
                parts = urlsplit(link)
            except ValueError as exc:
                yield Problem(CHANGELOG, "changelog-link", f"invalid URL {exc}")
                continue
            if "github.com" not in parts.netloc:
                continue
            last = parts.path.rstrip("/").rpartition("/")[2] if parts.path else ""
            if not last.isdigit() or int(last) <= 0:
                yield Problem(
                    CHANGELOG,
                    "changelog-link",
                    f"{link}: issue number in changelog link should be a positive number",
                )
