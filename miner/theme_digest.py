"""What the later steps of a job (themes, label, tree) read about its themes, in memory that does not
grow with the study's texts and vectors (issue 14).

One pass over the job's units, chunk by chunk, keeps per unit only its theme id, interview, model
and stance (`UnitRef`, strings shared), and per theme the sum of its vectors (the exact centroid)
and a bounded sample of its members with their vectors: the `SAMPLE_PER_THEME` members with the
smallest hash of their unit id (bottom-k sampling: deterministic, independent of the order and of
the other units). Counts, interviews, per-model figures and stances stay exact (computed from the
refs); quotes, keywords, the opinion phrase and the LLM's examples come from the sample, which is
every member of a theme up to that size, so smaller studies get exactly what they got before.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from miner.label import ThemeLabel
from miner.records import Theme, Unit
from miner.themes import representative_quotes

# Members per theme kept with their text and vector: 2,000 × ~200 themes at a million units is
# ~400k units at most (their vectors as float16); every theme of a study under ~50k units fits whole.
SAMPLE_PER_THEME = 2000


class UnitRef(NamedTuple):
    """A unit as the statistics see it: whose, which model, which stance."""

    interview_id: str
    session_model: str
    stance: str | None


@dataclass
class JobDigest:
    """Per unit (job order): its ref and theme id (-1 = none); per theme: vector sum, sample."""

    refs: list[UnitRef] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sums: dict[int, np.ndarray] = field(default_factory=dict)
    samples: dict[int, list[tuple[int, int, Unit, np.ndarray]]] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)
    dim: int = 0

    @property
    def theme_ids(self) -> list[int]:
        return sorted(self.sums)

    def size(self, theme_id: int) -> int:
        return self.sizes.get(theme_id, 0)

    def sample(self, theme_id: int) -> tuple[list[Unit], np.ndarray]:
        """The theme's sampled members in job order, and their vectors (float32)."""
        kept = sorted(self.samples.get(theme_id, []), key=lambda entry: entry[1])
        units = [entry[2] for entry in kept]
        vectors = np.vstack([entry[3] for entry in kept]).astype(np.float32) if kept else np.zeros((0, self.dim),
                                                                                                   np.float32)
        return units, vectors

    def centroid(self, theme_id: int) -> np.ndarray:
        """Mean of every member's vector (not only the sample's)."""
        return (self.sums[theme_id] / max(self.size(theme_id), 1)).astype(np.float32)

    def sampled_arrays(self) -> tuple[list[Unit], np.ndarray, np.ndarray]:
        """Every theme's sample concatenated: units, vectors, theme ids (what the LLM labeller reads)."""
        units, vectors, labels = [], [], []
        for theme_id in self.theme_ids:
            members, rows = self.sample(theme_id)
            units += members
            vectors.append(rows)
            labels.append(np.full(len(members), theme_id, dtype=np.int64))
        if not units:
            return [], np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64)
        return units, np.vstack(vectors), np.concatenate(labels)

    def build_themes(self, named: Sequence[ThemeLabel]) -> list[Theme]:
        """Themes (sorted ids) with exact sizes and interview counts, quotes from the sample
        (the answers nearest its centroid, as miner.themes.build_themes picks them)."""
        interviews: dict[int, set[str]] = {t: set() for t in self.sums}
        for ref, label in zip(self.refs, self.labels.tolist()):
            if label >= 0:
                interviews[label].add(ref.interview_id)
        themes = []
        for theme_id, label in zip(self.theme_ids, named, strict=True):
            units, vectors = self.sample(theme_id)
            themes.append(Theme(theme_id=theme_id, label=label.label, keywords=label.keywords,
                                labeller=label.labeller, summary=label.summary, answers=self.size(theme_id),
                                interviews=len(interviews[theme_id]),
                                quote_unit_ids=representative_quotes(units, vectors, list(range(len(units))))))
        return themes


def _priority(unit_id: str) -> int:
    return zlib.crc32(unit_id.encode("utf-8"))


def digest_rows(chunks: Iterable[Sequence[tuple[Any, ...]]], per_theme: int = SAMPLE_PER_THEME) -> JobDigest:
    """A JobDigest from miner.repository_stream.stream_job_units's chunks of rows."""
    digest = JobDigest()
    shared: dict[str, str] = {}
    labels: list[np.ndarray] = []
    position = 0
    for rows in chunks:
        chunk_labels = np.array([-1 if r[8] is None else r[8] for r in rows], dtype=np.int64)
        vectors = _vectors(rows)
        digest.dim = vectors.shape[1] if vectors.size else digest.dim
        for theme_id in np.unique(chunk_labels[chunk_labels >= 0]).tolist():
            total = vectors[chunk_labels == theme_id].astype(np.float64).sum(axis=0)
            digest.sums[theme_id] = digest.sums[theme_id] + total if theme_id in digest.sums else total
        for offset, (row, label) in enumerate(zip(rows, chunk_labels.tolist())):
            unit_id, interview_id, study, model, index, answer, answer_hash, stance = row[:8]
            interview_id = shared.setdefault(interview_id, interview_id)
            model = shared.setdefault(model, model)
            digest.refs.append(UnitRef(interview_id, model, None if stance is None else shared.setdefault(stance, stance)))
            if label < 0:
                continue
            heap = digest.samples.setdefault(label, [])
            key = -_priority(unit_id)  # a max-heap of priorities: the root is the first to drop
            if len(heap) >= per_theme and key <= heap[0][0]:
                continue
            unit = Unit(unit_id=unit_id, interview_id=interview_id, study=shared.setdefault(study, study),
                        session_model=model, answer_index=index, question="", answer=answer,
                        answer_hash=answer_hash, stance=stance)
            entry = (key, position + offset, unit, vectors[offset].astype(np.float16))
            if len(heap) < per_theme:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)
        labels.append(chunk_labels)
        position += len(rows)
    digest.labels = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    ids, counts = np.unique(digest.labels[digest.labels >= 0], return_counts=True)
    digest.sizes = dict(zip(ids.tolist(), counts.tolist()))
    return digest


def _vectors(rows: Sequence[tuple[Any, ...]]) -> np.ndarray:
    """The rows' stored vectors as float32 (float16 precision, as miner.repository.load_embeddings reads them)."""
    missing = [r[0] for r in rows if r[9] is None]
    if missing:
        raise RuntimeError(f"{len(missing)} units have no stored vector (first: {missing[0]}); "
                           "the embed, cluster and assign steps store every unit's")
    return np.vstack([np.frombuffer(r[9], dtype="<f2" if len(r[9]) == 2 * r[10] else "<f4").astype(np.float16)
                      for r in rows]).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
