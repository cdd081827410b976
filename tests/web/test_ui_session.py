"""CSRF values, the sign-in return path and the Origin check (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from package_storage.web.session import csrf_ok, csrf_token, local_path, new_seed, same_origin


def test_csrf_value_depends_on_seed_and_session() -> None:
    seed = new_seed()
    assert csrf_ok(seed, "secret", csrf_token(seed, "secret"))
    assert not csrf_ok(seed, "other", csrf_token(seed, "secret"))
    assert not csrf_ok(new_seed(), "secret", csrf_token(seed, "secret"))
    assert not csrf_ok(seed, None, "")
    assert not csrf_ok(None, None, csrf_token(seed, None))
    assert csrf_ok(seed, None, csrf_token(seed, None))  # the sign-in form, before a session
    assert len({new_seed() for _ in range(50)}) == 50


@given(st.text(max_size=40))
def test_local_path_never_leaves_the_site(target: str) -> None:
    path = local_path(target)
    assert path == "/" or path == target
    assert path.startswith("/") and not path.startswith("//")
    assert "\\" not in path and all(ord(c) >= 32 for c in path)


def test_local_path_examples() -> None:
    assert local_path("/packages/x?version=1") == "/packages/x?version=1"
    for bad in (None, "", "https://evil.test/", "//evil.test", "/\\evil.test", "x", "/a\nb"):
        assert local_path(bad) == "/"


def test_same_origin() -> None:
    assert same_origin(None, "http", "127.0.0.1:9090")  # no header: forms of old browsers
    assert same_origin("http://127.0.0.1:9090", "http", "127.0.0.1:9090")
    assert not same_origin("null", "http", "127.0.0.1:9090")
    assert not same_origin("https://127.0.0.1:9090", "http", "127.0.0.1:9090")
    assert not same_origin("http://evil.test", "http", "127.0.0.1:9090")
    assert not same_origin("http://127.0.0.1:9090", "http", None)
