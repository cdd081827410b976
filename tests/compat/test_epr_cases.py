"""Every case of ``shared/fixtures/epr/cases.md`` against a real ``package-storage serve``.

One test per case line; the comparison rules are those of cases.md ("Comparison rules"). A test
collects every problem it finds (status, headers, body) and fails once with all of them, body
mismatches shown as a unified diff.
"""

from __future__ import annotations

import difflib
import email.utils
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from epr_cases import GOLDEN_DIR, Case, load_cases, parse_case_line, parse_cases, unique_ids
from epr_server import Response, RunningServer

pytestmark = pytest.mark.slow

CASES = load_cases()
RANGE_CHUNK = 102400
MAX_DIFF_LINES = 60

STATIC_CONTENT_TYPES = {
    ".yml": "text/yaml; charset=UTF-8",
    ".md": "text/markdown; charset=utf-8",
    ".zip": "application/zip",
    ".ico": "image/x-icon",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".xml": "text/xml; charset=utf-8",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".wasm": "application/wasm",
}
BINARY_GOLDEN_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".ico", ".sig", ".zip", ".svg")
JSON_PATHS = ("/", "/index.json", "/search", "/categories")
ARTIFACT_ZIP = re.compile(r"/epr/[^/]+/[a-z0-9_]+-[^/]+\.zip")
PACKAGE_INDEX = re.compile(r"/package/[a-z0-9_]+/[^/]+/")
STATIC_FILE = re.compile(r"/package/[^/]+/[^/]+/(.+)")


# --- expectations -----------------------------------------------------------------------------


def expected_content_type(case: Case, status: int) -> str | None:
    """The fixed Content-Type of this answer, or None when cases.md does not fix one."""
    if any(c.name.lower() == "content-type" and c.value is not None for c in case.header_checks):
        return None  # a header directive wins (checked with the directives)
    if status >= 400:
        return "text/plain; charset=utf-8"
    if not 200 <= status < 300:
        return None
    path = case.path
    if path in JSON_PATHS or PACKAGE_INDEX.fullmatch(path):
        return "application/json"
    if path == "/favicon.ico":
        return "image/x-icon"
    if ARTIFACT_ZIP.fullmatch(path):
        return "application/zip"
    static = STATIC_FILE.fullmatch(path)
    if static:
        return STATIC_CONTENT_TYPES.get(Path(static.group(1)).suffix.lower())
    return None


def request_headers(case: Case) -> list[tuple[str, str]]:
    now = email.utils.formatdate(usegmt=True)
    return [(name, value.replace("<now>", now)) for name, value in case.request_headers]


# --- header checks ------------------------------------------------------------------------------


def check_common_headers(case: Case, resp: Response, what: str) -> list[str]:
    problems: list[str] = []
    cors = resp.values("Access-Control-Allow-Origin")
    if cors != ["*"]:
        problems.append(f"{what}: Access-Control-Allow-Origin is {cors}, expected ['*']")
    if 200 <= resp.status < 300:
        cache = resp.values("Cache-Control")
        if cache not in (["max-age=1", "public"], ["max-age=1, public"]):
            problems.append(
                f"{what}: Cache-Control is {cache}, expected ['max-age=1', 'public'] "
                "(or one value 'max-age=1, public')"
            )
    want_type = expected_content_type(case, resp.status)
    if want_type is not None:
        got_type = resp.values("Content-Type")
        if got_type != [want_type]:
            problems.append(f"{what}: Content-Type is {got_type}, expected [{want_type!r}]")
    return problems


def check_directives(case: Case, resp: Response) -> list[str]:
    problems: list[str] = []
    for check in case.header_checks:
        values = resp.values(check.name)
        if check.value is None:
            if not values:
                problems.append(f"header {check.name} is missing")
        elif values != [check.value]:
            problems.append(f"header {check.name} is {values}, expected [{check.value!r}]")
    return problems


# --- body comparison ----------------------------------------------------------------------------


def _diff(expected: str, actual: str, golden_name: str) -> str:
    lines = list(
        difflib.unified_diff(
            expected.splitlines(),
            actual.splitlines(),
            f"golden/{golden_name}",
            "response",
            lineterm="",
            n=2,
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)"]
    return "\n".join("    " + line for line in lines)


def _first_difference(expected: bytes, actual: bytes) -> str:
    limit = min(len(expected), len(actual))
    offset = next((i for i in range(limit) if expected[i] != actual[i]), limit)
    return (
        f"first difference at byte {offset}: golden {expected[offset : offset + 40]!r} "
        f"vs response {actual[offset : offset + 40]!r}"
    )


def zip_listing(body: bytes) -> str:
    """``<uncompressed size> <entry name>`` per entry, in archive order."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return "\n".join(f"{info.file_size} {info.filename}" for info in archive.infolist())


def _parses_as_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def compare_body(golden: str, expected: bytes, actual: bytes) -> list[str]:
    """Problems of ``actual`` against golden file ``golden`` (bytes ``expected``)."""
    if golden.endswith("-preview.txt"):
        try:
            listing = zip_listing(actual)
        except (zipfile.BadZipFile, ValueError) as exc:
            return [f"body is not a zip archive ({exc}); first bytes {actual[:60]!r}"]
        want = expected.decode("utf-8").strip()
        if listing.strip() != want:
            return ["zip listing differs:\n" + _diff(want, listing.strip(), golden)]
        return []
    if golden.endswith(BINARY_GOLDEN_SUFFIXES):
        if actual != expected:
            return [
                f"body differs from binary golden: {len(actual)} bytes "
                f"(sha256 {hashlib.sha256(actual).hexdigest()[:16]}) vs {len(expected)} bytes "
                f"(sha256 {hashlib.sha256(expected).hexdigest()[:16]}); "
                + _first_difference(expected, actual)
            ]
        return []
    if golden.endswith(".json") and _parses_as_json(expected):
        if actual == expected:
            return []
        parsed_equal = _parses_as_json(actual) and json.loads(actual) == json.loads(expected)
        text_actual = actual.decode("utf-8", errors="replace")
        text_expected = expected.decode("utf-8")
        note = (
            "parsed JSON is equal (key order ignored) but bytes differ"
            if parsed_equal
            else "parsed JSON differs too"
        )
        diff = _diff(text_expected, text_actual, golden)
        return [
            f"JSON body not byte-identical ({note}; {len(actual)} vs {len(expected)} bytes; "
            f"{_first_difference(expected, actual)}):\n{diff}"
        ]
    want_text = expected.decode("utf-8").strip()
    got_text = actual.decode("utf-8", errors="replace").strip()
    if got_text != want_text:
        return ["text body differs (trimmed):\n" + _diff(want_text, got_text, golden)]
    return []


# --- running one case ---------------------------------------------------------------------------


def fetch_ranges(server: RunningServer, case: Case, total: int | None) -> tuple[bytes, list[str]]:
    """GET the target in ``Range: bytes=<start>-<start+102400>`` chunks (each must be 206)."""
    body = b""
    problems: list[str] = []
    start = 0
    for _ in range(10_000):
        headers = [*request_headers(case), ("Range", f"bytes={start}-{start + RANGE_CHUNK}")]
        resp = server.request("GET", case.target, headers)
        what = f"GET Range bytes={start}-{start + RANGE_CHUNK}"
        if resp.status != 206:
            problems.append(f"{what}: status {resp.status}, expected 206")
            break
        problems.extend(check_common_headers(case, resp, what))
        body += resp.body
        if len(resp.body) < RANGE_CHUNK:
            break
        start += len(resp.body)
        if total is not None and start >= total:
            break
    if total is not None and len(body) != total:
        problems.append(f"ranged download gave {len(body)} bytes, HEAD Content-Length was {total}")
    return body, problems


def run_case(server: RunningServer, case: Case) -> tuple[Response, list[str]]:
    problems: list[str] = []
    method = "HEAD" if case.method == "RANGES" else case.method
    resp = server.request(method, case.target, request_headers(case))
    if resp.status != case.status:
        problems.append(f"status {resp.status} {resp.reason}, expected {case.status}")
    problems.extend(check_common_headers(case, resp, method))
    problems.extend(check_directives(case, resp))

    body = resp.body
    compare = case.golden is not None and case.method != "RANGES"
    if case.method == "RANGES":
        accept = resp.values("Accept-Ranges")
        if case.ranges == "none":
            if accept:
                problems.append(f"HEAD announces Accept-Ranges {accept}, expected none")
        else:
            if accept != ["bytes"]:
                problems.append(f"HEAD: Accept-Ranges is {accept}, expected ['bytes']")
            lengths = resp.values("Content-Length")
            total = int(lengths[0]) if len(lengths) == 1 and lengths[0].isdigit() else None
            if total is None:
                problems.append(f"HEAD: Content-Length is {lengths}, expected one number")
            if not problems:
                body, range_problems = fetch_ranges(server, case, total)
                problems.extend(range_problems)
                compare = case.golden is not None and not range_problems
    if compare and case.golden is not None:
        golden_path = case.golden_path()
        assert golden_path is not None
        problems.extend(compare_body(case.golden, golden_path.read_bytes(), body))
    return resp, problems


@pytest.mark.parametrize(
    ("epr_server", "case"),
    [(case.server_key, case) for case in CASES],
    ids=unique_ids(CASES),
    indirect=["epr_server"],
    scope="module",
)
def test_case(epr_server: RunningServer, case: Case) -> None:
    resp, problems = run_case(epr_server, case)
    if problems:
        preview = resp.body[:300].decode("utf-8", errors="replace")
        pytest.fail(
            f"cases.md line {case.line_no} ({case.section}):\n  {case.raw}\n"
            f"server {epr_server.name} on {epr_server.address}\n"
            + "\n".join(f"- {p}" for p in problems)
            + f"\nresponse headers:\n{resp.describe_headers()}\nbody (first 300 bytes): {preview!r}",
            pytrace=False,
        )


# --- the parser and the comparison rules themselves ----------------------------------------------


def test_every_case_line_is_parsed_and_every_golden_exists() -> None:
    text = (
        Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "epr" / "cases.md"
    ).read_text(encoding="utf-8")
    case_lines = [line for line in text.splitlines() if re.match(r"^[A-Z] \| ", line)]
    assert len(parse_cases(text)) == len(case_lines) == len(CASES)
    missing = [c.golden for c in CASES if c.golden and not (GOLDEN_DIR / c.golden).is_file()]
    assert missing == []
    assert len(set(unique_ids(CASES))) == len(CASES)


def test_parse_case_line_with_headers_and_directives() -> None:
    case = parse_case_line(
        "D | GET /package/x/1.0.0/a.yml [If-Modified-Since: <now>] | - | 200 | "
        "header: Content-Type: text/yaml; charset=UTF-8; header: Last-Modified; server: EPR_A=b"
    )
    assert case.request_headers == (("If-Modified-Since", "<now>"),)
    assert case.golden is None
    assert [(c.name, c.value) for c in case.header_checks] == [
        ("Content-Type", "text/yaml; charset=UTF-8"),
        ("Last-Modified", None),
    ]
    assert case.server_env == (("EPR_A", "b"),)
    assert case.test_id == "D-GET-/package/x/1.0.0/a.yml-[If-Modified-Since: <now>]-EPR_A=b"


def test_compare_body_rules() -> None:
    assert compare_body("a.json", b"[]", b"[]") == []
    assert (
        compare_body("a.json", b'{\n  "a": 1\n}\n', b'{\n  "a": 1\n}') != []
    )  # bytes, not trimmed
    assert (
        compare_body("e.json", b"package revision not found\n", b"package revision not found") == []
    )
    assert compare_body("e.txt", b"x\n", b"y\n") != []
    assert compare_body("i.jpg", b"\x00\x01", b"\x00\x02") != []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("p-1.0.0/manifest.yml", b"abc")
    assert compare_body("p-preview.txt", b"3 p-1.0.0/manifest.yml\n", buf.getvalue()) == []
    assert compare_body("p-preview.txt", b"4 p-1.0.0/manifest.yml\n", buf.getvalue()) != []


def test_expected_content_types() -> None:
    def ct(line: str, status: int) -> str | None:
        return expected_content_type(parse_case_line(line), status)

    assert ct("A | GET /search?x=1 | - | 200", 200) == "application/json"
    assert ct("A | GET /package/a/1.0.0/ | - | 200", 200) == "application/json"
    assert ct("A | GET /epr/a/a-1.0.0.zip | - | 200", 200) == "application/zip"
    assert ct("A | GET /epr/a/a-1.0.0.zip.sig | - | 200", 200) is None
    assert (
        ct("A | GET /package/a/1.0.0/docs/README.md | - | 200", 200)
        == "text/markdown; charset=utf-8"
    )
    assert ct("A | GET /search | - | 400", 400) == "text/plain; charset=utf-8"
    assert ct("A | GET /x.jpg | - | 304", 304) is None
