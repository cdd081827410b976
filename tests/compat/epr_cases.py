"""Parser for the recorded EPR conformance cases (``shared/fixtures/epr/cases.md``).

The file is read at test time; every line of the form

    SETUP | METHOD REQUEST | golden | status [| directives]

inside the ``## Cases`` section becomes one :class:`Case`. ``REQUEST`` is the request target sent
as is, optionally followed by request headers written ``[Name: value]``. Directives are separated
by ``; `` -- except that a ``; `` inside a header value (``header: Content-Type: text/yaml;
charset=UTF-8``) does not start a new directive, so a piece that does not begin with a known
directive keyword is glued back onto the previous one.

The setup table of the same file (``| A | `local-storage`, ... |``) gives each setup's
``package_paths`` in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EPR_FIXTURES = (REPO_ROOT / ".." / "shared" / "fixtures" / "epr").resolve()
CASES_FILE = EPR_FIXTURES / "cases.md"
GOLDEN_DIR = EPR_FIXTURES / "generated"

#: Placeholder in request headers replaced by the current time as an HTTP date.
NOW_PLACEHOLDER = "<now>"

DIRECTIVE_KEYWORDS = ("server:", "header:", "ranges:")

_CASE_LINE = re.compile(r"^[A-Z] \| ")
_SETUP_ROW = re.compile(r"^\|\s*([A-Z])\s*\|([^|]*)\|")
_HEADER = re.compile(r"\[([^:\]]+):\s*([^\]]*)\]")


class CaseFormatError(ValueError):
    """A line of cases.md that does not follow the documented format."""


@dataclass(frozen=True, slots=True)
class HeaderCheck:
    """``header: Name`` (value None: present) or ``header: Name: value`` (exactly that one value)."""

    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class Case:
    """One recorded request and what its answer must look like."""

    setup: str
    method: str
    target: str
    request_headers: tuple[tuple[str, str], ...]
    golden: str | None  # path relative to generated/, None for "-"
    status: int
    server_env: tuple[tuple[str, str], ...] = ()
    header_checks: tuple[HeaderCheck, ...] = ()
    ranges: str | None = None  # "none" | "bytes" for RANGES cases
    line_no: int = 0
    section: str = ""
    raw: str = field(default="", compare=False)

    @property
    def server_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Which server answers this case: the setup plus extra EPR_ environment."""
        return (self.setup, self.server_env)

    @property
    def path(self) -> str:
        """The request target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def test_id(self) -> str:
        parts = [self.setup, self.method, self.target]
        parts.extend(f"[{name}: {value}]" for name, value in self.request_headers)
        parts.extend(f"{name}={value}" for name, value in self.server_env)
        return "-".join(parts)

    def golden_path(self) -> Path | None:
        return None if self.golden is None else GOLDEN_DIR / self.golden


def _split_directives(text: str) -> list[str]:
    pieces: list[str] = []
    for piece in text.split("; "):
        if pieces and not piece.strip().startswith(DIRECTIVE_KEYWORDS):
            pieces[-1] = f"{pieces[-1]}; {piece}"
        else:
            pieces.append(piece)
    return [p.strip() for p in pieces if p.strip()]


def parse_case_line(line: str, *, line_no: int = 0, section: str = "") -> Case:
    """Parse one case line; raises :class:`CaseFormatError` naming the line on bad input."""
    fields = [f.strip() for f in line.split(" | ")]
    if len(fields) not in (4, 5):
        raise CaseFormatError(
            f"cases.md line {line_no}: expected 4 or 5 ' | '-separated fields, got {len(fields)}: {line!r}"
        )
    setup, request, golden, status_text = fields[:4]
    method, _, rest = request.partition(" ")
    if not method or not rest:
        raise CaseFormatError(
            f"cases.md line {line_no}: request {request!r} is not 'METHOD TARGET'"
        )
    target, _, header_text = rest.partition(" ")
    headers = tuple((m.group(1).strip(), m.group(2).strip()) for m in _HEADER.finditer(header_text))
    if header_text.strip() and not headers:
        raise CaseFormatError(
            f"cases.md line {line_no}: text after the target is not [Name: value]: {header_text!r}"
        )
    try:
        status = int(status_text)
    except ValueError as exc:
        raise CaseFormatError(
            f"cases.md line {line_no}: status {status_text!r} is not a number"
        ) from exc

    server_env: list[tuple[str, str]] = []
    checks: list[HeaderCheck] = []
    ranges: str | None = None
    for directive in _split_directives(fields[4]) if len(fields) == 5 else []:
        keyword, _, value = directive.partition(":")
        value = value.strip()
        if keyword == "server":
            name, eq, env_value = value.partition("=")
            if not eq or not name.startswith("EPR_"):
                raise CaseFormatError(
                    f"cases.md line {line_no}: server directive {value!r} is not EPR_X=Y"
                )
            server_env.append((name, env_value))
        elif keyword == "header":
            name, colon, header_value = value.partition(":")
            checks.append(HeaderCheck(name.strip(), header_value.strip() if colon else None))
        elif keyword == "ranges":
            if value not in ("none", "bytes"):
                raise CaseFormatError(
                    f"cases.md line {line_no}: ranges must be none|bytes: {value!r}"
                )
            ranges = value
        else:
            raise CaseFormatError(f"cases.md line {line_no}: unknown directive {directive!r}")
    if method == "RANGES" and ranges is None:
        raise CaseFormatError(f"cases.md line {line_no}: RANGES case without a ranges: directive")

    return Case(
        setup=setup,
        method=method,
        target=target,
        request_headers=headers,
        golden=None if golden == "-" else golden,
        status=status,
        server_env=tuple(sorted(server_env)),
        header_checks=tuple(checks),
        ranges=ranges,
        line_no=line_no,
        section=section,
        raw=line,
    )


def parse_cases(text: str) -> list[Case]:
    """Every case line of the ``## Cases`` section, in file order."""
    cases: list[Case] = []
    in_cases = False
    section = ""
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            in_cases = line.strip() == "## Cases"
            continue
        if not in_cases:
            continue
        if line.startswith("### "):
            section = line[4:].strip()
        elif _CASE_LINE.match(line):
            cases.append(parse_case_line(line.rstrip(), line_no=line_no, section=section))
    return cases


def parse_setups(text: str) -> dict[str, list[str]]:
    """Setup letter -> ``package_paths`` directory names (in order) from the setup table."""
    setups: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _SETUP_ROW.match(line)
        if match:
            setups[match.group(1)] = re.findall(r"`([^`]+)`", match.group(2))
    return setups


def unique_ids(cases: list[Case]) -> list[str]:
    """Readable test ids, with ``#n`` appended where two cases would share one."""
    seen: dict[str, int] = {}
    ids: list[str] = []
    for case in cases:
        base = case.test_id
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return ids


def load_cases() -> list[Case]:
    return parse_cases(CASES_FILE.read_text(encoding="utf-8"))


def load_setups() -> dict[str, list[str]]:
    return parse_setups(CASES_FILE.read_text(encoding="utf-8"))
