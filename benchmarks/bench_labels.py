"""Offline theme labels (issue 12.5): does the job's opinion label say the opinion?

Runs the job's offline opinion path in memory (benchmarks/bench_opinion_job.job_themes: opinion
units → vectors and stances → the theme clusterer → stance split) on sample studies, labels every
theme with miner.opinion_label.label_opinion_theme from all its members (the job's bounded sample
holds every member below 2,000 per theme), and scores each theme whose majority is a planted theme:

- identified: the label's vector is nearer to its planted theme's reference description
  (REFERENCE, written before the labeller was changed) than to any other planted theme's;
  margin: cosine to its own description minus the highest cosine to another;
- says_opinion: the label holds one of its planted theme's opinion words (OPINION_WORDS: the verbs,
  adjectives, adverbs and negations of the theme's claims in miner/sample_phrases.py, matched as word
  prefixes, not its topic nouns): "made up sources" does, "quotes and sources" and "code" do not;
- phrase: 2–6 words (a lone word, even "friendly", is not a phrase);
- both: says_opinion and phrase.

`--halie` also labels HALIE crossword (../shared/data/halie_crossword.jsonl, real answers, no planted
themes: read the labels by eye). Rows are tagged (`--tag before`, `--tag after`) and appended.

    python benchmarks/bench_labels.py --tag after --sizes 300 1000 --seeds 0 1 2 --halie \\
        --float32 --cache /tmp/label_vectors.npz [--out benchmarks/results/labels.json]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from bench_halie_study import DATA
from bench_opinion_job import Float32Embedder, VectorCache, job_themes, sample_study
from miner.components import Components, sample_params_from_settings, theme_clusterer_from_settings
from miner.ingest import ingest_file
from miner.opinion_label import label_opinion_theme
from miner.sample import PLANTED_THEMES
from miner.settings import Settings

HALIE = DATA / "halie_crossword.jsonl"

# One neutral sentence per planted theme: what a researcher should read from its label.
REFERENCE: dict[str, str] = {
    "too_verbose": "the answers were too long and wordy",
    "made_up_citation": "it made up fake sources and citations",
    "great_for_code": "it is very good at helping with programming code",
    "refused_harmless": "it refused to help with harmless requests",
    "understood_intent": "it understood what I meant",
    "fast_and_concise": "the replies were fast and concise",
    "outdated_knowledge": "its information was out of date",
    "friendly_tone": "it had a friendly, warm tone",
}
_NEGATIONS = "not no never none nothing didn't don't doesn't wasn't isn't couldn't wouldn't can't won't"
# Word prefixes that say what people think of the theme's aspect (from its claims and evaluative slots).
OPINION_WORDS: dict[str, tuple[str, ...]] = {key: tuple((words + " " + _NEGATIONS).split()) for key, words in {
    "too_verbose": "too long short verbos wordy rambl over-explain essay wall filler fluff padded bloated "
                   "unnecessary repeat tired less half much scroll buried",
    "made_up_citation": "made making invent fabricat fake nonexist hallucinat bogus exist trust caught legit "
                        "confident",
    "great_for_code": "great good excellent solid handy strong fix debug rewr explain clean refactor optimi sped "
                      "help work ran compil spott correct perfect better quick clear",
    "refused_harmless": "refus declin turned flag cautious censor restrictive paranoid preachy careful strict "
                        "lecture dangerous unsafe ridiculous annoy policy",
    "understood_intent": "underst got figur grasp picked knew caught read exact perfect clear good",
    "fast_and_concise": "fast quick speed snappy rapid instant immediate responsive concise point crisp "
                        "efficient succinct brief useful impressive saved lag wait",
    "outdated_knowledge": "outdat out-of-date date old stale behind obsolete years-old missed stuck past clue "
                          "idea cutoff",
    "friendly_tone": "friend warm kind polite cheerful personable encourag nice gentle welcom upbeat supportive "
                     "pleasant caring patient easy comfortable loved liked ease",
}.items()}
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")


def says_opinion(label: str, planted: str) -> bool:
    return any(w.startswith(OPINION_WORDS[planted]) for w in _WORD.findall(label.lower().replace("’", "'")))


def is_phrase(label: str) -> bool:
    return 2 <= len(label.split()) <= 6


def label_themes(job, embedder) -> tuple[dict[int, dict], float]:
    """Theme id → its label, stance and size; and the seconds labelling took."""
    members: dict[int, list[int]] = defaultdict(list)
    for index, theme in enumerate(job.labels.tolist()):
        if theme >= 0:
            members[theme].append(index)
    out, started = {}, time.perf_counter()
    for theme, rows in sorted(members.items()):
        label = label_opinion_theme([job.units[i].answer for i in rows], job.vectors[rows],
                                    [job.units[i].stance or "neutral" for i in rows], embedder)
        out[theme] = {"theme_id": theme, "label": label.phrase, "stance": label.stance, "answers": len(rows)}
    return out, time.perf_counter() - started


def score(label: str, planted: str, reference: dict[str, np.ndarray], embedder) -> dict:
    vector = embedder.embed([label])[0]
    sims = {key: float(vector @ ref) for key, ref in reference.items()}
    other = max(s for key, s in sims.items() if key != planted)
    return {"identified": sims[planted] > other, "margin": round(sims[planted] - other, 4),
            "says_opinion": says_opinion(label, planted), "phrase": is_phrase(label),
            "both": says_opinion(label, planted) and is_phrase(label)}


def sample_row(size: int, seed: int, parts, clusterer, sampling, embedder, reference) -> dict:
    interviews, planted = sample_study(size, seed)
    job = job_themes(interviews, parts, clusterer, cache=embedder, sampling=sampling)
    named, seconds = label_themes(job, embedder)
    truth: dict[int, list[str]] = defaultdict(list)
    for unit, theme in zip(job.units, job.labels.tolist()):
        if theme >= 0:
            truth[theme].append(planted[unit.answer_unit_id])
    themes = []
    for theme, row in named.items():
        majority, count = Counter(truth[theme]).most_common(1)[0]
        row = {**row, "planted": majority, "purity": round(count / len(truth[theme]), 3)}
        if majority in PLANTED_THEMES:
            row.update(score(row["label"], majority, reference, embedder))
        themes.append(row)
    return {"study": "sample", "size": size, "seed": seed, "units": len(job.units), "label_seconds": round(seconds, 2),
            "themes": themes, **summary(themes)}


def summary(themes: list[dict]) -> dict:
    scored = [t for t in themes if "identified" in t]
    rate = lambda key: round(sum(t[key] for t in scored) / max(len(scored), 1), 3)  # noqa: E731
    return {"scored": len(scored), "identified": rate("identified"), "says_opinion": rate("says_opinion"),
            "phrase": rate("phrase"), "both": rate("both"),
            "mean_margin": round(float(np.mean([t["margin"] for t in scored])) if scored else 0.0, 4)}


def halie_row(parts, clusterer, sampling, embedder, settings: Settings) -> dict:
    interviews = list(ingest_file(HALIE, "halie-crossword", settings.max_record_bytes).interviews)
    job = job_themes(interviews, parts, clusterer, cache=embedder, sampling=sampling)
    named, seconds = label_themes(job, embedder)
    themes = [{**t, "share": round(t["answers"] / len(job.units), 3)} for t in named.values()]
    return {"study": "halie", "units": len(job.units), "label_seconds": round(seconds, 2), "themes": themes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True, help="names this labeller's rows (before, after, …)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--halie", action="store_true", help="also label HALIE crossword")
    parser.add_argument("--cache", type=Path, help="an .npz of text vectors kept across runs (units and candidates)")
    parser.add_argument("--float32", action="store_true", help="run the embedding model in float32")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/labels.json"))
    args = parser.parse_args()
    settings = Settings()
    parts = Components.from_settings(settings)
    clusterer, sampling = theme_clusterer_from_settings(settings), sample_params_from_settings(settings)
    embedder = VectorCache(Float32Embedder(parts.embedder) if args.float32 else parts.embedder, args.cache)
    reference = dict(zip(REFERENCE, embedder.embed(list(REFERENCE.values()))))
    rows = [r for r in json.loads(args.out.read_text()) if r["tag"] != args.tag] if args.out.exists() else []
    runs = [(size, seed) for size in args.sizes for seed in args.seeds] + ([None] if args.halie else [])
    for run in runs:
        row = sample_row(*run, parts, clusterer, sampling, embedder, reference) if run else \
            halie_row(parts, clusterer, sampling, embedder, settings)
        rows.append({"tag": args.tag, "float32": args.float32, **row})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "themes"}), flush=True)
        print("   ", "; ".join(f"{t['label']} ({t['stance']}) [{t.get('planted', '')}"
                               f"{'' if 'both' not in t else ' ok' if t['both'] else ' NO'}]" for t in row["themes"]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")

if __name__ == "__main__":
    main()
