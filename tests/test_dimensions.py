"""Question → dimension by labelled prototypes, on phrasings the prototypes never contained."""

from __future__ import annotations

import pytest

from miner.dimensions import DIMENSIONS, OTHER, PrototypeClassifier, classify_questions, load_prototypes
from miner.sample_phrases import ACKNOWLEDGEMENTS, QUESTIONS

# Written for this test, never added to the prototypes: the held-out set.
HELD_OUT = {
    "understanding": ["Do you think the bot understood your question?",
                      "Was the AI able to figure out what you were looking for?",
                      "Did it ever misread your intentions?"],
    "needs": ["Did the tool do what you needed it to do?", "How well did the model help you with your goal?",
              "Did you get a useful result from the chat?"],
    "credibility": ["Were the facts it gave you correct?", "Did you spot any errors or hallucinations in its answers?",
                    "How trustworthy was the information?"],
    "satisfaction": ["How satisfied were you overall, from 1 to 10?", "Please rate the assistant on a five-point scale.",
                     "On a scale of one to five, how pleased are you with the chat?"],
    "improvement": ["What would you like the assistant to do better next time?", "Which improvements would you suggest?",
                    "What annoyed you that should be fixed?"],
    "overall": ["What's your general impression of the AI?", "How would you sum up the experience in one sentence?",
                "Any final thoughts about the assistant?"],
    OTHER: ["What country do you live in?", "How long have you been programming?", "Which browser did you use?",
            "What topic did you ask about?"],
}


@pytest.fixture(scope="module")
def classifier(embedder) -> PrototypeClassifier:
    return PrototypeClassifier(embedder)


def test_prototypes_cover_every_dimension_and_hold_no_test_phrasing():
    prototypes = load_prototypes()
    assert set(prototypes) == set(DIMENSIONS) | {OTHER}
    known = {p.casefold() for texts in prototypes.values() for p in texts}
    held_out = [q for qs in HELD_OUT.values() for q in qs] + [q for qs in QUESTIONS.values() for q in qs]
    assert not known & {q.casefold() for q in held_out}


def _accuracy(classifier, labelled: list[tuple[str, str]]) -> tuple[float, list]:
    labels = classifier.classify([q for _, q in labelled])
    wrong = [(want, got.dimension, q) for (want, q), got in zip(labelled, labels) if got.dimension != want]
    return 1 - len(wrong) / len(labelled), wrong


def test_held_out_phrasings_are_classified(classifier):
    labelled = [(dim, q) for dim, qs in HELD_OUT.items() for q in qs]
    accuracy, wrong = _accuracy(classifier, labelled)
    assert accuracy >= 0.85, wrong


def test_sample_study_questions_with_acknowledgements_are_classified(classifier):
    # The sample generator's interviewer questions, prefixed as its interviewer does ("Thanks. ...").
    labelled = [(dim.replace("improvements", "improvement"), ack + q)
                for dim, qs in QUESTIONS.items() for q in qs for ack in ("", ACKNOWLEDGEMENTS[3])]
    accuracy, wrong = _accuracy(classifier, labelled)
    assert accuracy >= 0.85, wrong


def test_halie_survey_questions(classifier):
    helpful, change, adjectives = classifier.classify([
        "Why did you find the AI Teammate helpful or unhelpful?",
        "Did the way you chose to interact with the AI Teammate change over the course of the task? If so, how?",
        "What adjectives would you use to describe the AI Teammate?",
    ])
    assert helpful.dimension in ("needs", "overall")
    assert adjectives.dimension == "overall"
    assert change.dimension == OTHER


def test_unrelated_questions_fall_below_the_threshold_to_other(classifier):
    labels = classifier.classify(["What is your age?", "What's your favourite colour?", "Tell me about your weekend."])
    assert [label.dimension for label in labels] == [OTHER] * 3


def test_confidence_is_a_probability_and_a_stricter_threshold_gives_more_other(embedder, classifier):
    questions = [q for qs in HELD_OUT.values() for q in qs]
    labels = classifier.classify(questions)
    assert all(0.0 <= label.confidence <= 1.0 for label in labels)
    strict = PrototypeClassifier(embedder, threshold=0.95).classify(questions)
    assert sum(label.dimension == OTHER for label in strict) > sum(label.dimension == OTHER for label in labels)


def test_classify_questions_labels_each_distinct_text_once(classifier):
    labelled = classify_questions(["Did it meet your needs?", "Did it meet your needs?", "How old are you?"], classifier)
    assert set(labelled) == {"Did it meet your needs?", "How old are you?"}
    assert labelled["Did it meet your needs?"].dimension == "needs"
