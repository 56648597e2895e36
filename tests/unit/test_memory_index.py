"""MemoryIndex: given memory_stored events -> when searched -> then ranked items."""

from __future__ import annotations

from datetime import UTC, datetime

from events.catalog import MemoryStored
from services.memory.index import MemoryIndex, tokenize

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def stored(key: str, text: str, *, goal_id: str = "g-1") -> MemoryStored:
    return MemoryStored(
        event_id=f"ev-{key}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=f"cause-{key}",
        correlation_id=goal_id,
        producer="memory@0.1.0",
        key=key,
        text=text,
        source_event_id=f"src-{key}",
    )


def index_of(*events: MemoryStored) -> MemoryIndex:
    index = MemoryIndex()
    for event in events:
        index.add(event)
    return index


def keys(index: MemoryIndex, query: str, k: int = 10) -> list[str]:
    return [item.key for item in index.search(query, k)]


def test_tokenize_lowercases_splits_on_punctuation_and_drops_stopwords() -> None:
    assert tokenize("The Calculator -> 17*23 = 391, and THAT is it") == [
        "calculator",
        "17",
        "23",
        "391",
    ]


def test_the_same_key_twice_is_one_item_and_the_first_text_wins() -> None:
    index = index_of(stored("a", "apples grow on trees"), stored("a", "bananas are yellow"))

    assert len(index) == 1
    assert keys(index, "apples") == ["a"]
    assert keys(index, "bananas") == []


def test_a_found_item_carries_the_stored_event_data() -> None:
    index = index_of(stored("g-9/1/s1", "echo -> hello world", goal_id="g-9"))

    [item] = index.search("hello", 5)

    assert item.key == "g-9/1/s1"
    assert item.text == "echo -> hello world"
    assert item.goal_id == "g-9"
    assert item.source_event_id == "src-g-9/1/s1"
    assert item.score > 0


def test_a_document_sharing_a_rare_term_beats_one_sharing_a_common_term() -> None:
    # Same length, one matching query term each: only the terms' rarity tells them apart.
    index = index_of(
        stored("rare", "zebra sighting"),
        stored("common", "report weather"),
        stored("c2", "report stocks"),
        stored("c3", "report sports"),
    )

    ranked = index.search("report zebra", 10)

    assert [item.key for item in ranked] == ["rare", "c3", "c2", "common"]
    assert ranked[0].score > ranked[1].score


def test_repeated_terms_score_higher_but_sublinearly() -> None:
    index = index_of(
        stored("once", "kiwi alpha beta gamma"),
        stored("thrice", "kiwi kiwi kiwi alpha"),
        stored("other", "delta"),
    )

    scores = {item.key: item.score for item in index.search("kiwi", 5)}

    assert scores["thrice"] > scores["once"]
    assert scores["thrice"] < 3 * scores["once"]


def test_shorter_documents_win_for_the_same_matches() -> None:
    index = index_of(
        stored("short", "kiwi"),
        stored("long", "kiwi alpha beta gamma delta epsilon"),
    )

    assert keys(index, "kiwi") == ["short", "long"]


def test_equal_scores_rank_newer_first() -> None:
    index = index_of(
        stored("b-old", "kiwi fruit"),
        stored("a-new", "kiwi fruit"),
        stored("c-newest", "kiwi fruit"),
    )

    ranked = index.search("kiwi", 10)

    assert [item.key for item in ranked] == ["c-newest", "a-new", "b-old"]
    assert len({item.score for item in ranked}) == 1


def test_k_limits_the_number_of_items() -> None:
    index = index_of(*(stored(f"k{n}", f"kiwi number {n}") for n in range(5)))

    assert keys(index, "kiwi", k=2) == ["k4", "k3"]
    assert keys(index, "kiwi", k=0) == []


def test_documents_without_a_query_term_are_not_returned() -> None:
    index = index_of(stored("fruit", "kiwi"), stored("car", "engine wheel"))

    assert keys(index, "kiwi") == ["fruit"]
    assert keys(index, "submarine") == []


def test_a_query_of_only_stopwords_finds_nothing() -> None:
    index = index_of(stored("a", "the cat is on the mat"))

    assert keys(index, "the is on") == []


def test_stopwords_do_not_count_towards_a_match() -> None:
    index = index_of(stored("cat", "the cat"), stored("dog", "a dog"))

    assert keys(index, "the dog") == ["dog"]


def test_an_empty_index_or_an_empty_query_finds_nothing() -> None:
    assert len(MemoryIndex()) == 0
    assert MemoryIndex().search("anything", 5) == []
    assert index_of(stored("a", "kiwi")).search("", 5) == []
    assert index_of(stored("a", "kiwi")).search("  ,;  ", 5) == []


def test_a_document_of_only_stopwords_is_indexed_but_never_found() -> None:
    index = index_of(stored("empty", "the and of"), stored("kiwi", "kiwi"))

    assert len(index) == 2
    assert keys(index, "the kiwi") == ["kiwi"]


def test_search_is_deterministic_for_the_same_events() -> None:
    events = [stored(f"k{n}", f"kiwi {'apple ' * n} pear {n}") for n in range(6)]

    assert index_of(*events).search("kiwi apple pear", 6) == index_of(*events).search(
        "kiwi apple pear", 6
    )
