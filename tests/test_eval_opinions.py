"""`miner eval opinions` on a small file with known answers, and the scoring rule itself."""

from __future__ import annotations

import csv
import json
import random
import re

import pytest
from typer.testing import CliRunner

from miner.cli import app
from miner.eval_opinions import OpinionDataError, read_opinion_csv, score_opinions

SPEED = {"positive": ["it answered really fast", "the replies came quickly and smoothly", "super quick, great responses",
                      "it was fast and efficient"],
         "negative": ["it was painfully slow", "the replies were far too slow", "waiting for answers was awful and slow",
                      "it lagged terribly on every reply"]}
SOURCES = {"negative": ["it made up the sources", "the citations it gave were fake", "the references were fabricated",
                        "half of the sources were invented and wrong"],
           "positive": ["the sources were accurate and reliable", "its citations were correct and helpful",
                        "the references were excellent", "the sources it cited were trustworthy"]}


@pytest.fixture(scope="module")
def opinions_csv(tmp_path_factory):
    return _write_opinions(tmp_path_factory.mktemp("eval") / "opinions.csv", seed=3)


def _write_opinions(path, seed):
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "review", "gold"])
        # A third of the texts speak of speed only, a third of sources only, a third of both: themes
        # are mapped to categories by co-occurrence, which texts holding every category cannot tell.
        for i in range(42):
            speed, sources = rng.choice(["positive", "negative"]), rng.choice(["positive", "negative"])
            said_speed, said_sources = rng.choice(SPEED[speed]).capitalize(), rng.choice(SOURCES[sources])
            if i % 3 == 0:
                writer.writerow([i, f"{said_speed}.", f"speed:{speed}"])
            elif i % 3 == 1:
                writer.writerow([i, f"{said_sources.capitalize()}.", f"sources:{sources}"])
            else:
                writer.writerow([i, f"{said_speed}, but {said_sources}.", f"speed:{speed};sources:{sources}"])
    return path


def test_eval_opinions_json_on_known_answers(opinions_csv):
    result = CliRunner().invoke(app, ["eval", "opinions", str(opinions_csv), "--text-column", "review",
                                      "--opinions-column", "gold", "--json"])
    assert result.exit_code == 0, result.output
    found = re.findall(r"\{.*\}", result.output)  # stderr (a progress bar) shares the output here
    assert found, result.output
    scores = json.loads(found[-1])
    assert set(scores) == {"pair_f1", "category_f1", "polarity_accuracy", "units", "themes", "seconds"}
    assert scores["units"] == 56  # two opinions in the texts that say both, split at "but"
    assert 2 <= scores["themes"] <= 12
    assert scores["category_f1"] >= 0.9  # speed and sources units never share a theme
    assert scores["polarity_accuracy"] >= 0.8 and scores["pair_f1"] >= 0.7
    assert all(0.0 <= scores[k] <= 1.0 for k in ("pair_f1", "category_f1", "polarity_accuracy"))


def test_bad_gold_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,opinions\nit was fast,speed:positive\nit was slow,speed:terrible\n", encoding="utf-8")
    with pytest.raises(OpinionDataError, match=r"row 3 .*speed:terrible"):
        read_opinion_csv(path)
    result = CliRunner().invoke(app, ["eval", "opinions", str(path)])
    assert result.exit_code == 2 and "row 3" in result.output
    with pytest.raises(OpinionDataError, match="no column review"):
        read_opinion_csv(path, text_column="review")


def test_scoring_maps_themes_many_to_one():
    gold = [frozenset({("food", "positive"), ("staff", "negative")}),
            frozenset({("food", "negative")}),
            frozenset({("staff", "negative")})]
    # theme 0 co-occurs with food twice, staff once → food; theme 1 → staff; theme 2 → food too
    scores = score_opinions(gold, [0, 0, 1, 2, 1], [0, 1, 0, 1, 2],
                            ["positive", "negative", "negative", "neutral", "negative"])
    # predicted: text 0 {food:positive, staff:negative}, text 1 {food:negative}, text 2 {staff:neutral}
    assert scores["category_f1"] == 1.0
    assert scores["polarity_accuracy"] == 0.75
    assert scores["pair_f1"] == pytest.approx(0.75)


def test_scoring_by_mean_unit_score_and_deterministic_ties():
    gold = [frozenset({("food", "positive"), ("staff", "neutral")}),
            frozenset({("food", "neutral"), ("staff", "negative")})]
    # theme 0 co-occurs with food and staff twice each: the tie goes to "food" (alphabetical)
    text_index, themes = [0, 0, 1], [0, 0, 0]
    stances, scores = ["positive", "neutral", "neutral"], [0.6, 0.0, 0.1]
    majority = score_opinions(gold, text_index, themes, stances)
    assert majority["category_f1"] == pytest.approx(2 / 3)  # (0, food), (1, food) of 4 gold categories
    assert majority["polarity_accuracy"] == 0.5  # text 0's positive/neutral tie is "mixed"
    by_mean = score_opinions(gold, text_index, themes, stances, scores=scores, threshold=0.2)
    assert by_mean["polarity_accuracy"] == 1.0  # text 0: mean 0.3 → positive; text 1: 0.1 → neutral
    assert by_mean["pair_f1"] == pytest.approx(2 / 3)


def test_a_cluster_above_max_share_is_clustered_again():
    """Two groups close together (70% of the points, one cluster) and one far away: with max_share
    the big cluster is clustered again on its own and splits; the small one stays whole."""
    import numpy as np

    from miner.eval_opinions import OpinionClusterer

    rng = np.random.default_rng(0)
    centres = {"a": np.eye(16)[0], "b": np.eye(16)[0] + 0.12 * np.eye(16)[1], "c": np.eye(16)[5]}
    sizes = {"a": 70, "b": 70, "c": 60}
    vectors = np.vstack([centres[k] + 0.03 * rng.normal(size=(n, 16)) for k, n in sizes.items()])
    truth = np.repeat(list(sizes), list(sizes.values()))
    plain = OpinionClusterer(seed=1, fraction=0.1, selection="eom").fit(vectors)
    capped = OpinionClusterer(seed=1, fraction=0.1, selection="eom", max_share=0.5).fit(vectors)
    big = (truth == "a") | (truth == "b")
    assert len(set(plain[big])) == 1 and len(set(capped[big])) > 1
    assert len(set(capped[truth == "c"])) == 1 and not set(capped[truth == "c"]) & set(capped[big])


def test_eval_opinions_with_a_stance_fitted_on_a_labelled_file(opinions_csv, tmp_path):
    """--stance-train fits the supervised head on another labelled file (same columns), then scores."""
    train = _write_opinions(tmp_path / "train.csv", seed=11)
    result = CliRunner().invoke(app, ["eval", "opinions", str(opinions_csv), "--text-column", "review",
                                      "--opinions-column", "gold", "--stance-train", str(train), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(re.findall(r"\{.*\}", result.output)[-1])
    assert set(scores) == {"pair_f1", "category_f1", "polarity_accuracy", "units", "themes", "seconds"}
    assert scores["units"] == 56
    assert scores["category_f1"] >= 0.9
    assert scores["polarity_accuracy"] >= 0.8 and scores["pair_f1"] >= 0.7


def test_stance_train_file_errors_name_the_file_and_column(opinions_csv, tmp_path):
    runner = CliRunner()

    def said(result):  # the message without the line breaks and box rich wraps long paths in
        return re.sub(r"[\s│╭╮╰╯─]+", "", result.output)

    base = ["eval", "opinions", str(opinions_csv), "--text-column", "review", "--opinions-column", "gold"]
    missing = tmp_path / "no_such_train.csv"
    result = runner.invoke(app, [*base, "--stance-train", str(missing)])
    assert result.exit_code == 2 and "no_such_train.csv" in said(result), result.output

    wrong_columns = tmp_path / "wrong_columns.csv"
    wrong_columns.write_text("id,review,labels\n0,it was fast,speed:positive\n", encoding="utf-8")
    result = runner.invoke(app, [*base, "--stance-train", str(wrong_columns)])
    assert result.exit_code == 2 and "wrong_columns.csv" in said(result) and "nocolumngold" in said(result), result.output

    bad_pair = tmp_path / "bad_pair.csv"
    bad_pair.write_text("id,review,gold\n0,it was fast,speed:great\n", encoding="utf-8")
    result = runner.invoke(app, [*base, "--stance-train", str(bad_pair)])
    assert result.exit_code == 2 and "bad_pair.csv" in said(result) and "row2" in said(result), result.output

    one_polarity = tmp_path / "one_polarity.csv"
    one_polarity.write_text("id,review,gold\n" + "".join(f"{i},it was fast number {i},speed:positive\n"
                                                          for i in range(12)), encoding="utf-8")
    result = runner.invoke(app, [*base, "--stance-train", str(one_polarity)])
    assert result.exit_code == 2 and "one_polarity.csv" in said(result) and "twopolarities" in said(result), \
        result.output
