import threading

import numpy as np
import pytest

from proxy.semantic_cache.index import SemanticIndex, SemanticIndexRegistry

DIM = 8


def unit(*values):
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def axis(position):
    vector = np.zeros(DIM, dtype=np.float32)
    vector[position] = 1.0
    return vector


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_search_returns_entries_above_the_threshold_best_first():
    index = SemanticIndex(dim=DIM, max_items=10)
    index.add(entry_id="a", vector=unit(1, 0), text="a")
    index.add(entry_id="b", vector=unit(1, 1), text="b")
    index.add(entry_id="c", vector=unit(0, 1), text="c")
    found = index.search(vector=unit(1, 0.1), k=5, threshold=0.5)
    assert [candidate.entry_id for candidate in found] == ["a", "b"]
    assert found[0].score > found[1].score >= 0.5


def test_search_returns_at_most_k_candidates():
    index = SemanticIndex(dim=DIM, max_items=10)
    for position in range(4):
        index.add(entry_id=str(position), vector=unit(1, position * 0.01), text="")
    assert len(index.search(vector=unit(1), k=2)) == 2


def test_least_recently_used_entry_is_evicted_first_and_reported():
    index = SemanticIndex(dim=DIM, max_items=2)
    index.add(entry_id="old", vector=axis(0), text="")
    index.add(entry_id="used", vector=axis(1), text="")
    index.touch("old")
    evicted = index.add(entry_id="new", vector=axis(2), text="")
    assert evicted == ["used"]
    assert "old" in index and "new" in index and "used" not in index
    assert index.stats.evicted == 1


def test_search_alone_does_not_count_as_use():
    index = SemanticIndex(dim=DIM, max_items=2)
    index.add(entry_id="first", vector=axis(0), text="")
    index.add(entry_id="second", vector=axis(1), text="")
    index.search(vector=axis(0), k=1)
    assert index.add(entry_id="third", vector=axis(2), text="") == ["first"]


def test_expired_entries_are_not_found_and_are_purged():
    clock = FakeClock()
    index = SemanticIndex(dim=DIM, max_items=10, ttl_seconds=60, clock=clock)
    index.add(entry_id="a", vector=axis(0), text="")
    assert index.search(vector=axis(0), threshold=0.9)
    clock.now += 61
    assert index.search(vector=axis(0), threshold=0.9) == []
    assert index.purge_expired() == ["a"]
    assert len(index) == 0


def test_expired_entries_make_room_before_live_ones_are_evicted():
    clock = FakeClock()
    index = SemanticIndex(dim=DIM, max_items=2, ttl_seconds=60, clock=clock)
    index.add(entry_id="stale", vector=axis(0), text="")
    clock.now += 30
    index.add(entry_id="live", vector=axis(1), text="")
    clock.now += 31
    assert index.add(entry_id="fresh", vector=axis(2), text="") == []
    assert "live" in index and "fresh" in index


def test_adding_an_existing_id_replaces_its_vector():
    index = SemanticIndex(dim=DIM, max_items=10)
    index.add(entry_id="a", vector=axis(0), text="old")
    index.add(entry_id="a", vector=axis(1), text="new")
    assert len(index) == 1
    assert index.search(vector=axis(0), threshold=0.5) == []
    assert index.search(vector=axis(1), threshold=0.5)[0].text == "new"


def test_removed_entries_are_not_found():
    index = SemanticIndex(dim=DIM, max_items=10)
    index.add(entry_id="a", vector=axis(0), text="")
    assert index.remove("a")
    assert not index.remove("a")
    assert index.search(vector=axis(0)) == []


def test_scopes_never_see_each_others_entries():
    registry = SemanticIndexRegistry(dim=DIM, max_items_per_scope=10)
    registry.scope("org-a").add(entry_id="a", vector=axis(0), text="org a question")
    assert registry.scope("org-b").search(vector=axis(0)) == []
    assert registry.scope("org-a").search(vector=axis(0))[0].entry_id == "a"
    assert registry.scope("org-a") is registry.scope("org-a")


def test_each_scope_is_bounded_separately():
    registry = SemanticIndexRegistry(dim=DIM, max_items_per_scope=1)
    registry.scope("a").add(entry_id="1", vector=axis(0), text="")
    registry.scope("b").add(entry_id="2", vector=axis(1), text="")
    assert len(registry.scope("a")) == 1 and len(registry.scope("b")) == 1


def test_a_vector_of_the_wrong_dimension_is_refused():
    index = SemanticIndex(dim=DIM, max_items=10)
    with pytest.raises(ValueError, match="dimensions"):
        index.add(entry_id="a", vector=np.ones(DIM + 1), text="")


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_compact_storage_finds_the_same_nearest_neighbour(storage):
    generator = np.random.default_rng(7)
    vectors = generator.normal(size=(500, DIM)).astype(np.float32)
    exact = SemanticIndex(dim=DIM, max_items=500)
    compact = SemanticIndex(dim=DIM, max_items=500, storage=storage)
    for position, vector in enumerate(vectors):
        exact.add(entry_id=str(position), vector=vector, text="")
        compact.add(entry_id=str(position), vector=vector, text="")
    agreements = 0
    for query in generator.normal(size=(50, DIM)).astype(np.float32):
        exact_best = exact.search(vector=query, k=1)[0]
        compact_best = compact.search(vector=query, k=1)[0]
        agreements += exact_best.entry_id == compact_best.entry_id
        assert abs(exact_best.score - compact_best.score) < 0.02
    assert agreements >= 48
    assert compact.memory_bytes() < exact.memory_bytes()


def test_concurrent_writers_never_exceed_the_bound():
    index = SemanticIndex(dim=DIM, max_items=50)
    generator = np.random.default_rng(1)
    vectors = generator.normal(size=(400, DIM)).astype(np.float32)

    def writer(offset):
        for position in range(offset, 400, 4):
            index.add(entry_id=str(position), vector=vectors[position], text="")
            index.search(vector=vectors[position], k=3)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(index) == 50
    assert index.stats.evicted == 350
