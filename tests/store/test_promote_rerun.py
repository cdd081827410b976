"""Promote is idempotent: promoting a version that is already in the target (and no longer in
the source) is ``unchanged``, like publishing the same bytes again, so a CI re-run never fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_service import make_package

from package_storage.errors import NotFoundError
from package_storage.store.directory import Store


def test_promoting_again_is_unchanged_and_records_nothing(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s") as store:
        svc = store.service("ci")
        svc.publish(make_package(tmp_path / "p", "1.0.0"))
        first = svc.promote("hello_nginx", "1.0.0", to="staging")
        assert first.changed
        before = (store.catalog.events(), store.catalog.change_counter())
        again = svc.promote("hello_nginx", "1.0.0", to="staging")
        assert not again.changed and again.event is None and again.revisions == ()
        assert again.message.startswith("hello_nginx 1.0.0 is already in staging (sha256 ")
        assert again.message.endswith("): nothing to do")
        assert (store.catalog.events(), store.catalog.change_counter()) == before
        assert svc.promote("hello_nginx", "1.0.0", to="production").changed
        assert not svc.promote("hello_nginx", "1.0.0", to="production").changed
        with pytest.raises(NotFoundError, match=r"9\.9\.9 is not in stage staging"):
            svc.promote("hello_nginx", "9.9.9", to="production")  # in no stage: still refused
