"""The opinion layer of the job without a database: answers → opinion units (ids, spans, the whole
answer kept, no-opinion answers counted apart), clusters split by stance, a tree node's stance."""

from __future__ import annotations

import numpy as np

from miner.opinion_job import node_stance, opinion_units, says_nothing, split_by_stance, unit_theme_stance
from miner.records import Unit
from miner.units import answer_hash


def answer(index: int, text: str, interview: str = "iv1") -> Unit:
    return Unit(f"{interview}:{index}", interview, "s", "m", index, "What did you think?", text, answer_hash(text))


def test_answers_become_opinion_units_with_their_answer_and_span():
    answers = [answer(0, "It was quick to reply. But it made up the sources for my essay."),
               answer(1, "4/5"), answer(2, "idk"), answer(3, "Mostly satisfied, 4 out of 5"),
               answer(4, "The tone was friendly and warm throughout.")]
    units, empty = opinion_units(answers)
    assert empty == {"iv1:1", "iv1:2", "iv1:3"}  # counted, never themed
    assert [u.unit_id for u in units] == ["iv1:0:0", "iv1:0:1", "iv1:4:0"]
    first, second = units[:2]
    assert first.answer == "It was quick to reply."
    assert second.answer == "it made up the sources for my essay."
    for unit in units:
        whole = unit.full_answer
        assert whole[unit.span_start:unit.span_end] == unit.answer
        assert unit.answer_unit_id == unit.unit_id.rsplit(":", 1)[0]
        assert unit.answer_hash == answer_hash(unit.answer) and unit.interview_id == "iv1"


def test_spans_that_only_rate_say_nothing():
    assert says_nothing("four out of five") and says_nothing("Mostly satisfied overall") and says_nothing("?")
    assert not says_nothing("it made up the sources") and not says_nothing("too verbose for a simple question")


def test_a_cluster_splits_by_stance_only_when_both_sides_are_large():
    labels = np.array([0] * 10 + [1] * 10 + [-1])
    stances = (["positive"] * 5 + ["negative"] * 4 + ["neutral"]          # cluster 0: both sides large
               + ["negative"] * 8 + ["positive"] + ["neutral"] + [None])   # cluster 1: one positive stray
    out = split_by_stance(labels, stances, min_size=3)
    assert len(set(out[:10])) == 2 and out[9] == out[0]  # the neutral unit joins the largest side
    assert set(out[:5]).isdisjoint(out[5:9])
    assert len(set(out[10:20])) == 1 and out[20] == -1
    assert len(set(out[:20])) == 3


def test_theme_and_node_stance():
    assert unit_theme_stance(["negative"] * 7 + ["positive"] * 2 + ["neutral"]) == "negative"
    assert unit_theme_stance(["negative"] * 5 + ["positive"] * 5) == "mixed"
    assert unit_theme_stance(["neutral"] * 8 + ["positive"] * 2) == "neutral"
    stances, sizes = {1: "positive", 2: "negative", 3: "positive"}, {1: 70, 2: 20, 3: 10}
    assert node_stance(stances, sizes, (1, 3)) == "positive"
    assert node_stance(stances, sizes, (1, 2, 3)) == "positive"  # 80% of the answers
    assert node_stance(stances, {1: 40, 2: 50, 3: 10}, (1, 2, 3)) == "mixed"


def test_an_answer_of_several_opinion_units_takes_their_normalised_mean(embedder):
    """miner.embed.answer_vectors, as every job path calls it: the answer cut into two units is not
    embedded, its vector is its units' normalised mean at stored precision; an answer that is its own
    unit has that unit's vector; a no-opinion answer its own text's."""
    from conftest import CountingEmbedder
    from miner.compact import stored_precision, to_stored
    from miner.embed import answer_vectors

    answers = [answer(0, "It was quick to reply. But it made up the sources for my essay."),
               answer(1, "The tone was friendly and warm throughout."), answer(2, "idk")]
    units, empty = opinion_units(answers)
    assert [u.answer_unit_id for u in units] == ["iv1:0", "iv1:0", "iv1:1"] and empty == {"iv1:2"}
    counting = CountingEmbedder(stored_precision(embedder))
    vectors = answer_vectors(answers, units, lambda of: counting.embed([u.answer for u in of]))
    assert counting.texts == ["idk", "It was quick to reply.", "it made up the sources for my essay.",
                              "The tone was friendly and warm throughout."]  # once each, one call
    spans = counting.inner.embed(counting.texts)
    mean = spans[1:3].astype(np.float64).mean(axis=0)
    assert np.array_equal(vectors[0], to_stored(mean / np.linalg.norm(mean)))
    assert np.array_equal(vectors[1], spans[3]) and np.array_equal(vectors[2], spans[0])
    assert not np.allclose(vectors[0], counting.inner.embed([answers[0].answer])[0], atol=1e-2)
    assert vectors.dtype == np.float32 and np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-3)


def test_theme_granularity_holds_at_1000_interviews(embedder):
    """The job's path (opinion units → stance → theme clusterer → stance split) on a 1,000-interview
    sample gives about as many themes as planted, each planted theme with its planted stance."""
    from collections import Counter, defaultdict
    from dataclasses import replace

    from sklearn.metrics import adjusted_rand_score

    from miner.components import theme_clusterer_from_settings
    from miner.ingest import to_interview
    from miner.opinion_job import min_theme_size, theme_stances, unit_stances
    from miner.sample import PLANTED_THEMES, RESERVED_LABELS, THEME_POLARITY, generate_sample
    from miner.settings import Settings
    from miner.themes import number_clusters
    from miner.units import split_units

    samples = generate_sample(1000, seed=0)
    interviews = [to_interview(s.record, "g", "sample.jsonl", n) for n, s in enumerate(samples, start=1)]
    planted = {f"{i.interview_id}:{k}": label for i, s in zip(interviews, samples)
               for k, label in enumerate(s.answer_themes)}
    units, _ = opinion_units(split_units(interviews))
    vectors = embedder.embed([u.answer for u in units])
    units = [replace(u, stance=s) for u, s in zip(units, unit_stances([u.answer for u in units], vectors, embedder))]
    labels = number_clusters(split_by_stance(theme_clusterer_from_settings(Settings()).fit(vectors),
                                             [u.stance for u in units], min_theme_size(len(units))))
    truth = [planted[u.answer_unit_id] for u in units]
    assert labels.max() + 1 <= 2 * (len(PLANTED_THEMES) + len(RESERVED_LABELS))
    assert adjusted_rand_score(truth, labels) >= 0.8
    members = defaultdict(list)
    for label, true in zip(labels, truth):
        members[int(label)].append(true)
    stances = theme_stances(units, labels)
    for theme, found in members.items():
        main = Counter(found).most_common(1)[0][0]
        if main in THEME_POLARITY:
            assert stances[theme] == ("positive" if THEME_POLARITY[main] > 0 else "negative"), (theme, main)


def test_a_theme_of_chatter_is_neutral_whatever_its_words(embedder):
    """A theme whose units are about something else than their question or the assistant (the
    quality filter's relatedness) holds no opinion of the assistant: neutral, even if cheerful."""
    from dataclasses import replace

    from miner.opinion_job import off_topic_themes, theme_stances

    question = "Did the assistant understand what you asked for?"
    chatter = ["is it Friday yet, I love Fridays", "my cat is the best, so cute", "great weather today lol",
               "I love pizza night with friends", "happy birthday to my sister!"]
    opinions = ["it understood exactly what I needed", "it got my request right away", "it misunderstood my question",
                "it understood the request perfectly", "it clearly got what I was asking"]
    texts = chatter + opinions
    units = [replace(answer(0, t, f"i{n}"), question=question, stance="positive") for n, t in enumerate(texts)]
    vectors = embedder.embed(texts)
    labels = np.array([0] * len(chatter) + [1] * len(opinions))
    off_topic = off_topic_themes({t: ([units[i] for i in np.flatnonzero(labels == t)], vectors[labels == t])
                                  for t in (0, 1)}, embedder)
    assert off_topic == {0}
    assert theme_stances(units, labels, off_topic) == {0: "neutral", 1: "positive"}
