"""Theme ids carry over when members do; births, merges, splits and retirements are recorded."""

from __future__ import annotations

from miner.registry import match_themes


def units(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def events_by_theme(match):
    return {e.theme_id: (e.event, e.related) for e in match.events}


def test_identical_clustering_keeps_every_id_whatever_the_cluster_numbers():
    previous = {**{u: 4 for u in units("a", 20)}, **{u: 9 for u in units("b", 30)}}
    current = {**{u: 1 for u in units("a", 20)}, **{u: 0 for u in units("b", 30)}}
    match = match_themes(previous, current, next_theme_id=10)
    assert match.theme_of_cluster == {1: 4, 0: 9}
    assert events_by_theme(match) == {4: ("kept", ()), 9: ("kept", ())}


def test_new_cluster_of_new_units_is_born_with_a_fresh_id():
    previous = {u: 0 for u in units("a", 20)}
    current = {**{u: 0 for u in units("a", 20)}, **{u: 1 for u in units("new", 12)}}
    match = match_themes(previous, current, next_theme_id=5)
    assert match.theme_of_cluster == {0: 0, 1: 5}
    assert events_by_theme(match)[5] == ("born", ())


def test_two_themes_merged_into_one_cluster():
    previous = {**{u: 0 for u in units("a", 30)}, **{u: 1 for u in units("b", 10)}}
    current = {u: 0 for u in units("a", 30) + units("b", 10)}
    match = match_themes(previous, current, next_theme_id=2)
    assert match.theme_of_cluster == {0: 0}
    assert events_by_theme(match)[0] == ("merged", (1,))


def test_split_theme_keeps_its_id_on_the_bigger_part():
    previous = {u: 3 for u in units("a", 40)}
    current = {**{u: 0 for u in units("a", 40)[:25]}, **{u: 1 for u in units("a", 40)[25:]}}
    match = match_themes(previous, current, next_theme_id=7)
    assert match.theme_of_cluster == {0: 3, 1: 7}
    assert events_by_theme(match)[7] == ("split", (3,))


def test_vanished_theme_is_retired_and_outliers_get_no_theme():
    previous = {**{u: 0 for u in units("a", 20)}, **{u: 1 for u in units("b", 20)}}
    current = {**{u: 0 for u in units("a", 20)}, **{u: -1 for u in units("b", 20)}}
    match = match_themes(previous, current, next_theme_id=2)
    assert match.theme_of_cluster == {0: 0}
    assert events_by_theme(match)[1] == ("retired", ())


def test_small_drift_keeps_ids():
    previous = {**{u: 0 for u in units("a", 100)}, **{u: 1 for u in units("b", 100)}}
    # 8% of each theme's answers move to the other cluster, 10% new answers arrive.
    current = {**{u: 0 for u in units("a", 92)}, **{u: 1 for u in units("a", 100)[92:]},
               **{u: 1 for u in units("b", 92)}, **{u: 0 for u in units("b", 100)[92:]},
               **{u: 0 for u in units("n", 20)}}
    match = match_themes(previous, current, next_theme_id=2)
    assert match.theme_of_cluster == {0: 0, 1: 1}
