"""LISTEN/NOTIFY change notification of the PostgreSQL catalog: a commit wakes the listener,
a rollback does not, and a listener whose connection is cut reconnects by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from package_storage.store.storage.base import ArtifactRecord
from package_storage.store.storage.pgnotify import PostgresChangeNotifier
from package_storage.store.storage.postgres import PostgresCatalog, libpq_conninfo
from pg_server import admin_url, temporary_database


@pytest.fixture
def catalog() -> Iterator[PostgresCatalog]:
    with temporary_database("ps_notify") as url:
        cat = PostgresCatalog(url)
        yield cat
        cat.close()


def wait_until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + 60
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def publish(cat: PostgresCatalog, version: str) -> None:
    digest = f"{version.replace('.', ''):0>64}"
    with cat.transaction() as tx:
        tx.add_artifact(ArtifactRecord(digest, 1, "pkg", version))
        tx.put_entry("snapshot", "pkg", version, digest, actor="t")
        tx.new_revision("snapshot")


def test_a_commit_notifies_and_a_rollback_does_not(catalog: PostgresCatalog) -> None:
    notifier = catalog.change_notifier()
    assert isinstance(notifier, PostgresChangeNotifier)
    try:
        wait_until(notifier.active, "the listener did not connect")
        notifier.wait(0)  # the wake-up of connecting
        with pytest.raises(RuntimeError), catalog.transaction() as tx:
            tx.record_event("noop", actor="t")
            raise RuntimeError("roll back")
        read_only_seen = catalog.change_counter()
        with catalog.transaction() as tx:  # reads only: nothing to tell
            tx.entries("snapshot")
        assert not notifier.wait(0.5)
        assert catalog.change_counter() == read_only_seen
        publish(catalog, "1.0.0")
        assert notifier.wait(30)
    finally:
        notifier.close()
    assert not notifier.active()


def test_a_cut_listener_reconnects_and_wakes_the_reader(catalog: PostgresCatalog) -> None:
    notifier = PostgresChangeNotifier(libpq_conninfo(catalog.url))
    try:
        wait_until(notifier.active, "the listener did not connect")
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'package-storage-listen' AND datname = %s",
                (catalog.url.database,),
            )
        wait_until(lambda: notifier.connects >= 2 and notifier.active(), "no reconnect")
        notifier.wait(0)
        publish(catalog, "1.0.1")
        assert notifier.wait(30)
    finally:
        notifier.close()
