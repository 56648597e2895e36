"""Long-term memory: given memory_stored / memory_forgotten -> when searched -> then ranked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from events.catalog import MemoryForgotten, MemoryStored
from services.memory.bm25 import tokenize
from services.memory.longterm import LongTermMemory as MemoryIndex
from services.memory.longterm import SearchFilter, content_hash, reciprocal_rank_fusion

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def stored(
    key: str,
    text: str,
    *,
    goal_id: str = "g-1",
    at: datetime = NOW,
    kind: str = "observation",
    importance: float = 0.5,
    metadata: dict[str, Any] | None = None,
) -> MemoryStored:
    return MemoryStored(
        event_id=f"ev-{key}",
        goal_id=goal_id,
        occurred_at=at,
        causation_id=f"cause-{key}",
        correlation_id=goal_id,
        producer="memory@0.1.0",
        key=key,
        text=text,
        source_event_id=f"src-{key}",
        kind=kind,
        importance=importance,
        metadata=metadata or {},
    )


def forgotten(key: str = "", *, goal_id: str = "g-1", digest: str = "") -> MemoryForgotten:
    return MemoryForgotten(
        event_id=f"forget-{key}-{goal_id}",
        goal_id=goal_id,
        occurred_at=NOW,
        causation_id=None,
        correlation_id=goal_id,
        producer="memory@0.1.0",
        command_id="c-1",
        key=key,
        content_hash=digest,
    )


def index_of(*events: MemoryStored) -> MemoryIndex:
    index = MemoryIndex()
    for event in events:
        index.store(event)
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
        stored("b-old", "kiwi apple"),
        stored("a-new", "kiwi pear"),
        stored("c-newest", "kiwi plum"),
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


def test_the_same_text_from_another_goal_is_one_item_more_important_and_more_recent() -> None:
    later = NOW + timedelta(days=3)
    index = index_of(
        stored("g-1/1/s1", "The launch  code is BLUE HERON", goal_id="g-1"),
        stored("g-2/1/s1", "the launch code is blue heron", goal_id="g-2", at=later),
    )

    [item] = index.search("launch code", 5)
    [record] = index.items.values()

    assert len(index) == 1
    assert (item.key, item.goal_id, item.source_event_id) == ("g-1/1/s1", "g-1", "src-g-1/1/s1")
    assert record.keys == ["g-1/1/s1", "g-2/1/s1"]
    assert record.goals == ["g-1", "g-2"]
    assert record.importance == 0.6
    assert record.last_stored_at == later
    assert item.recorded_at == NOW


def test_importance_and_recency_break_a_tie_in_relevance() -> None:
    index = index_of(
        stored("plain", "kiwi apple"),
        stored("important", "kiwi pear", importance=1.0),
    )
    assert keys(index, "kiwi") == ["important", "plain"]

    old, new = NOW - timedelta(days=365), NOW
    index = index_of(stored("new", "kiwi apple", at=new), stored("old", "kiwi pear", at=old))
    assert [i.key for i in index.search("kiwi", 5, now=NOW)] == ["new", "old"]


def test_a_forgotten_key_is_never_returned_not_even_when_its_text_is_stored_again() -> None:
    index = index_of(stored("a", "kiwi secret"), stored("b", "kiwi public"))

    [removed] = index.forget(forgotten("a"))
    index.store(stored("c", "KIWI   secret", goal_id="g-3"))
    index.store(stored("a", "kiwi other text"))

    assert removed.key == "a"
    assert keys(index, "kiwi") == ["b"]


def test_forgetting_a_key_memory_has_not_seen_yet_holds_for_when_it_arrives() -> None:
    index = MemoryIndex()

    assert index.forget(forgotten("late", digest=content_hash("x"))) == []
    index.store(stored("late", "kiwi late"))
    index.store(stored("other", "x"))

    assert len(index) == 0


def test_forgetting_a_goal_removes_what_it_taught_and_what_it_teaches_later() -> None:
    index = index_of(
        stored("g-1/1/s1", "kiwi one", goal_id="g-1"),
        stored("g-2/1/s1", "kiwi two", goal_id="g-2"),
        stored("g-2/1/s2", "kiwi one", goal_id="g-2"),  # merged into g-1's item
    )

    removed = index.forget(forgotten(goal_id="g-2"))
    index.store(stored("g-2/2/s1", "kiwi three", goal_id="g-2"))

    assert sorted(i.key for i in removed) == ["g-1/1/s1", "g-2/1/s1"]
    assert keys(index, "kiwi") == []


def test_filters_by_goal_kind_metadata_and_time() -> None:
    index = index_of(
        stored("a", "kiwi a", goal_id="g-1", kind="lesson", metadata={"team": "ops"}),
        stored("b", "kiwi b", goal_id="g-2", at=NOW + timedelta(hours=1)),
        stored("c", "kiwi c", goal_id="g-2", kind="lesson", metadata={"team": "dev"}),
    )

    def found(where: SearchFilter) -> list[str]:
        return sorted(i.key for i in index.search("kiwi", 10, where=where))

    assert found(SearchFilter(goal_id="g-2")) == ["b", "c"]
    assert found(SearchFilter(kinds=("lesson",))) == ["a", "c"]
    assert found(SearchFilter(metadata={"team": "ops"})) == ["a"]
    assert found(SearchFilter(since=NOW + timedelta(minutes=1))) == ["b"]
    assert found(SearchFilter(until=NOW + timedelta(minutes=1))) == ["a", "c"]


def test_reciprocal_rank_fusion_rewards_agreement_between_rankings() -> None:
    fused = reciprocal_rank_fusion([1, 2, 3], [3, 1, 4])

    assert sorted(fused, key=lambda d: -fused[d]) == [1, 3, 2, 4]
    assert fused[1] == 1 / 61 + 1 / 62


def test_a_dense_ranking_brings_in_items_without_a_shared_word() -> None:
    index = index_of(stored("car", "the automobile is parked in bay 7"), stored("x", "kiwi"))
    car_id = next(i.item_id for i in index.items.values() if i.key == "car")

    assert keys(index, "where is my car") == []
    assert [i.key for i in index.search("where is my car", 5, dense=[car_id])] == ["car"]


def test_a_search_scores_only_each_terms_best_candidates_and_still_finds_the_rare_word() -> None:
    from services.memory.bm25 import CANDIDATES_PER_TERM

    memory = MemoryIndex()
    many = CANDIDATES_PER_TERM * 5
    for n in range(many):  # a word shared by far more items than a search scores
        memory.store(stored(f"k{n}", f"echo -> step of goal {n}"))
    memory.store(stored("kz", "echo -> step of goal zanzibar"))

    [best] = memory.search("which step of goal zanzibar", 1, now=NOW)
    assert best.text == "echo -> step of goal zanzibar"  # its rare word makes it a candidate
    exhaustive = memory._lexical.scores("step goal", per_term=None)
    limited = memory._lexical.scores("step goal", per_term=CANDIDATES_PER_TERM)
    assert len(exhaustive) == many + 1
    assert len(limited) == CANDIDATES_PER_TERM  # the same docs hold both words
    # Among equal impacts the newest are the candidates.
    assert min(limited) == many + 1 - CANDIDATES_PER_TERM
    assert set(limited.items()) <= set(exhaustive.items())
