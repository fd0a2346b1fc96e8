"""The session index keeps a lone session as itself and a crowd as a set, transparently."""

from gateway.realtime.index import Index


def test_values_are_added_found_and_discarded() -> None:
    index: Index[str, str] = Index()
    index.add("k", "a")
    assert index.get("k") == ["a"]
    index.add("k", "a")
    assert index.get("k") == ["a"]
    index.add("k", "b")
    assert sorted(index.get("k")) == ["a", "b"]
    index.discard("k", "a")
    assert index.get("k") == ["b"]
    index.discard("k", "b")
    assert index.get("k") == []
    assert len(index) == 0


def test_discarding_what_is_not_there_changes_nothing() -> None:
    index: Index[str, str] = Index()
    index.discard("missing", "a")
    index.add("k", "a")
    index.discard("k", "z")
    assert index.get("k") == ["a"]
