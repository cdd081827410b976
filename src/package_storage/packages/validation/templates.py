"""Agent templates (``agent/input/*.hbs``, ``data_stream/*/agent/stream/*.hbs``) must be valid
Handlebars: every ``{{`` closed, block helpers (``{{#x}}``, ``{{^x}}``) closed by the matching
``{{/x}}``, ``{{else}}`` only inside a block. Rule ``template-invalid``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from package_storage.packages.validation.context import Context
from package_storage.packages.validation.core import Problem

TEMPLATE_DIR = re.compile(r"(agent/input|data_stream/[^/]+/agent/stream)/[^/]+\.hbs")
_NAME = re.compile(r"[^\s}~()]+")


def syntax_error(text: str) -> str:
    """Why ``text`` is not a valid Handlebars template, or ``""``."""
    stack: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            break
        line = text.count("\n", 0, start) + 1
        if text.startswith("{{!--", start):
            end = text.find("--}}", start + 5)
            if end < 0:
                return f"line {line}: unclosed comment"
            pos = end + 4
            continue
        triple = text.startswith("{{{", start)
        closer = "}}}" if triple else "}}"
        end = text.find(closer, start + (3 if triple else 2))
        if end < 0:
            return f"line {line}: unclosed expression"
        inner = text[start + (3 if triple else 2) : end].strip().strip("~").strip()
        pos = end + len(closer)
        if inner.startswith("!"):
            continue
        if not inner:
            return f"line {line}: empty expression"
        if inner[0] in "#^":
            rest = inner[1:].lstrip()
            if rest.startswith(">") or rest.startswith("*"):  # partial and decorator blocks
                rest = rest[1:].lstrip()
            match = _NAME.match(rest)
            if not match:
                return f"line {line}: block without a name"
            name = match.group(0)
            stack.append("^" if inner[0] == "^" and not name else name)
        elif inner[0] == "/":
            match = _NAME.match(inner[1:].strip())
            name = match.group(0) if match else ""
            if not stack:
                return f"line {line}: {{{{/{name}}}}} closes no block"
            if stack[-1] != name:
                return f"line {line}: {{{{/{name}}}}} closes {{{{#{stack[-1]}}}}}"
            stack.pop()
        elif (inner == "else" or inner.startswith("else ")) and not stack:
            return f"line {line}: {{{{else}}}} outside a block"
    if stack:
        return f"{{{{#{stack[-1]}}}}} is not closed"
    return ""


def check(ctx: Context) -> Iterator[Problem]:
    if ctx.package_type not in ("integration", "input"):
        return
    for path in ctx.pkg.files:
        if not TEMPLATE_DIR.fullmatch(path):
            continue
        data = ctx.pkg.read(path) or b""
        error = syntax_error(data.decode("utf-8", errors="replace"))
        if error:
            yield Problem(
                path,
                "template-invalid",
                f"invalid handlebars template: error validating {path}: {error}",
            )
