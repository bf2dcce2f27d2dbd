"""The fine-tuned stance that BENCHMARKS.md § Opinions measured and did not adopt
(benchmarks/fine_tuned_stance.py): it learns a labelled split, with fixed seeds, and refuses what it
cannot fit. Small: 25 units, a few batches."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # not a package

from fine_tuned_stance import FineTunedEnsemble, FineTunedStance  # noqa: E402
from miner.eval_opinions import OpinionTexts  # noqa: E402
from miner.stance import stance_of_score  # noqa: E402
from test_stance import FIT_HELD_OUT, FIT_TRAIN  # noqa: E402


@pytest.fixture(scope="module")
def embedder():
    from miner.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def _fit(embedder, texts, labels, contexts, **options):
    stance = FineTunedStance(threshold=0.1, batch_size=8, seed=0, **options)
    return stance.fit_units(embedder.embed(texts), labels, texts, contexts)


def test_fine_tuned_stance_learns_the_labelled_polarities_in_context(embedder):
    """Encoder and head (started from the logistic regression) fine-tuned on 25 units, each read with
    a sentence it came from: the encoder's weights move, held-out complaints and praise get their side,
    and the same seed gives the same scores."""
    texts = [t for texts in FIT_TRAIN.values() for t in texts]
    labels = [{polarity} for polarity, texts in FIT_TRAIN.items() for _ in texts]
    contexts = [f"{t}, and that was our evening" for t in texts]
    stance = _fit(embedder, texts, labels, contexts, epochs=2)
    start = _fit(embedder, texts, labels, contexts, epochs=0)
    moved = max(float((a - b).detach().abs().max()) for a, b in zip(stance.encoder.parameters(),
                                                                   start.encoder.parameters()))
    assert moved > 0
    held = [t for t, _ in FIT_HELD_OUT]
    scores = stance.scores(held, None, held)
    polar = [(t, want, round(float(s), 2)) for (t, want), s in zip(FIT_HELD_OUT, scores) if want != "neutral"]
    assert all(stance_of_score(s, 0.1) == want for _, want, s in polar), polar
    assert stance.stances(held, None, held) == [stance_of_score(s, 0.1) for s in scores]
    again = _fit(embedder, texts, labels, contexts, epochs=2)
    assert np.allclose(again.scores(held, None, held), scores, atol=1e-5)


def test_fine_tuned_stance_reads_the_units_of_the_file_it_is_given(embedder):
    """Through fit_stance / evaluate_opinions' calls (fit(vectors, polarities), scores(texts, vectors)):
    the units and their sentences come from the file given to reading(); other units are refused."""
    data = OpinionTexts(["The soup was cold and the waiter was rude.", "The pasta was lovely."],
                        [frozenset({("food", "negative"), ("staff", "negative")}), frozenset({("food", "positive")})])
    stance = FineTunedStance(threshold=0.1, epochs=1, seed=0).reading(data)
    units = stance._reading[0]
    assert stance._reading[1] == [data.texts[0]] * (len(units) - 1) + [data.texts[1]]
    stance.fit(embedder.embed(units), [{"negative"}] * (len(units) - 1) + [{"positive"}])
    assert len(stance.scores(units, None)) == len(units)
    with pytest.raises(ValueError, match="reading"):
        stance.scores(["another unit"], None)


def test_the_ensemble_scores_the_mean_of_its_three_heads(embedder):
    texts = [t for texts in FIT_TRAIN.values() for t in texts]
    labels = [{polarity} for polarity, texts in FIT_TRAIN.items() for _ in texts]
    train = OpinionTexts(texts, [frozenset() for _ in texts])
    ensemble = FineTunedEnsemble(threshold=0.1, epochs=1).reading(train)
    units = ensemble.members[0]._reading[0]
    assert units == texts  # one unit a text here
    ensemble.fit(embedder.embed(units), labels)
    held = [t for t, _ in FIT_HELD_OUT]
    ensemble.reading(OpinionTexts(held, [frozenset() for _ in held]))
    units = ensemble.members[1]._reading[0]  # "… to arrive and was cold" is cut in two
    vectors = embedder.embed(units)
    every = [ensemble.linear.scores(units, vectors)] + [m.scores(units, vectors) for m in ensemble.members]
    assert np.allclose(ensemble.scores(units, vectors), np.mean(every, axis=0))
    assert ensemble.stances(units, vectors)[0] == "negative"  # our waiter never came back to check on us


def test_fine_tuned_stance_refuses_what_it_cannot_fit():
    vectors, texts = np.eye(4), ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="two polarities"):
        FineTunedStance().fit_units(vectors, [{"positive"}] * 4, texts, texts)
    with pytest.raises(ValueError, match="context"):
        FineTunedStance().fit_units(vectors, [{"positive"}, {"negative"}] * 2, texts)
    with pytest.raises(ValueError, match="reading"):
        FineTunedStance().fit(vectors, [{"positive"}, {"negative"}] * 2)
    with pytest.raises(ValueError, match="fit"):
        FineTunedStance().scores(["x"], None, ["x"])
