"""Schemathesis against the OpenAPI document: generated requests to every operation (with an
admin token, so they reach the service) never get a 5xx, and every answer matches the
document (status, content type, schema)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from manage_helpers import build_store
from schemathesis.checks import positive_data_acceptance

from package_storage.manage.app import create_app
from package_storage.store.directory import Store


@pytest.fixture(scope="module")
def api_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("openapi")
    st = build_store(root / "store", root / "packages")
    try:
        yield st
    finally:
        st.close()


@pytest.fixture(scope="module")
def admin_headers(api_store: Store) -> dict[str, str]:
    _, secret = api_store.service("setup").create_token("fuzz", ["admin"])
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def api_schema(api_store: Store) -> Any:
    app = create_app(api_store, max_upload=1024 * 1024, poll_interval=0.01, stream_seconds=0.05)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    # The stream is a long poll by design (its own tests follow it); everything else is fuzzed.
    return schema.exclude(path="/api/v1/events/stream")


def test_every_operation_matches_the_document(
    api_schema: Any, admin_headers: dict[str, str]
) -> None:
    secret = admin_headers["authorization"]

    @api_schema.auth()
    class AdminToken:
        def get(self, case: Any, ctx: Any) -> str:
            return secret

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": data}

    tested = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            suppress_health_check=list(HealthCheck),
            deadline=None,
            database=None,
        )
        def check(case: Any) -> None:
            # Every other check runs: no 5xx, status, content type, headers and body as
            # documented, auth enforced, invalid input refused. Not "every schema-valid request
            # is accepted": the store's rules refuse many (no such stage, both a stage and a
            # distribution), with a documented 4xx.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
        tested.append(operation.label)
    assert len(tested) >= 20, tested
    for label in (
        "POST /api/v1/packages/{name}/{version}/yank",
        "POST /api/v1/packages/{name}/{version}/unyank",
        "POST /api/v1/stages",
        "POST /api/v1/stages/{name}/freeze",
        "POST /api/v1/stages/{name}/unfreeze",
        "GET /api/v1/stages/{name}/events",
    ):
        assert label in tested, (label, tested)


def test_the_document_is_served_without_a_token(api_schema: Any) -> None:
    assert api_schema.raw_schema["openapi"].startswith("3.1")
