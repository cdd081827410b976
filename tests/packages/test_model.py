"""Documents: a package's two documents held parsed, or as bytes decoded on each use."""

from __future__ import annotations

import functools
import json
import pickle

import pytest

from package_storage.packages.model import DocumentPair, Documents, JSONObject


def _decode(data: bytes) -> DocumentPair:
    raw = json.loads(data)
    return raw["document"], raw["entry"]


def _add(key: str, value: object, document: JSONObject, entry: JSONObject) -> DocumentPair:
    return {**document, key: value}, {**entry, key: value}


DATA = json.dumps({"document": {"name": "a", "version": "1.0.0"}, "entry": {"name": "a"}}).encode()


def test_parsed_documents_are_the_dicts_given() -> None:
    document, entry = {"name": "a"}, {"name": "a"}
    docs = Documents.parsed(document, entry)
    assert not docs.is_encoded and docs.encoded_size == 0
    assert docs.document() is document and docs.search_entry() is entry


def test_encoded_documents_are_decoded_on_every_use_and_not_kept() -> None:
    calls: list[bytes] = []

    def counting(data: bytes) -> DocumentPair:
        calls.append(data)
        return _decode(data)

    docs = Documents.encoded(DATA, counting)
    assert docs.is_encoded and docs.encoded_size == len(DATA)
    assert calls == []
    first = docs.document()
    first["name"] = "changed"  # a caller's copy: the held bytes do not change
    assert docs.document() == {"name": "a", "version": "1.0.0"}
    assert docs.search_entry() == {"name": "a"}
    assert len(calls) == 3


def test_edits_apply_at_once_when_parsed_and_after_each_decoding_when_encoded() -> None:
    edit = functools.partial(_add, "yanked", True)
    parsed = Documents.parsed(*_decode(DATA)).edited(edit)
    assert not parsed.is_encoded
    encoded = Documents.encoded(DATA, _decode).edited(edit)
    assert encoded.is_encoded
    assert encoded.pair() == parsed.pair()
    assert encoded.document()["yanked"] is True
    twice = encoded.edited(functools.partial(_add, "signature_path", "/x.sig"))
    assert twice.search_entry() == {"name": "a", "yanked": True, "signature_path": "/x.sig"}
    assert "signature_path" not in encoded.search_entry()  # the original is untouched


def test_documents_are_immutable_and_pickle() -> None:
    docs = Documents.encoded(DATA, _decode).edited(functools.partial(_add, "yanked", True))
    with pytest.raises(AttributeError):
        docs._data = b""  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(docs))
    assert back.is_encoded and back.pair() == docs.pair()
    plain = pickle.loads(pickle.dumps(Documents.parsed({"a": 1}, {"b": 2})))
    assert plain.pair() == ({"a": 1}, {"b": 2})


def test_either_parsed_or_encoded() -> None:
    with pytest.raises(ValueError):
        Documents(None)
    with pytest.raises(ValueError):
        Documents(({}, {}), DATA, _decode)
