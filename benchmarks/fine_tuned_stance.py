"""The encoder fine-tuned for stance on MAMS train (``bench_opinions.py --fine-tuned``), not in the
product package yet. On MAMS validation no single fine-tuned model beat the logistic regression on
frozen vectors (:class:`miner.stance.FittedStance`, ``--stance-train``); the mean of the three
(:class:`FineTunedEnsemble`) did, and on test met the polarity target on the mean of three seeds, at
about 35 min of fine-tuning on 2 CPU cores (BENCHMARKS.md § Opinions, "Stance fitted on labelled
texts"). Whether it becomes ``--stance-train``'s head is the lead's call.

:class:`FineTunedStance` plugs into :func:`miner.eval_opinions.fit_stance` and
:func:`~miner.eval_opinions.evaluate_opinions` unchanged: those call ``fit(vectors, polarities)`` and
``scores(texts, vectors)`` with the units of one file in the order of ``eval_opinions._units``, so
:meth:`FineTunedStance.reading` is told the file first and gives each unit its text and the sentence
it was cut from.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import numpy as np

from miner.eval_opinions import OpinionTexts, _units
from miner.opinion_units import split_aspect_spans
from miner.stance import FittedStance, VaderStance, stance_of_score


class FineTunedStance:
    """A stance fine-tuned on labelled units: the sentence encoder itself (the bundled
    all-MiniLM-L6-v2 unless ``model`` names another) trained with a 3-class linear head on mean-pooled
    tokens; score = P(positive) − P(negative), stance as :class:`FittedStance`'s. With ``context``
    the encoder reads each unit paired with the text it was cut from ("the waiter" [SEP] "the waiter
    never came back"), so a unit is read in its sentence; scores then need the same ``contexts``.

    Used by no product path. It starts from :class:`FittedStance`: the head is initialised with the
    logistic regression fitted on the frozen vectors, then encoder and head are trained together with
    soft targets (a unit with n possible polarities has 1/n on each). CPU, float32, fixed seeds
    (``seed``): the same labels give the same head. Defaults: the first run measured (1 epoch, t 0.3);
    :class:`FineTunedEnsemble` trains its two for 2 epochs (BENCHMARKS.md § Opinions, "Stance fitted
    on labelled texts")."""

    name = "fine-tuned MiniLM + linear head"
    THRESHOLD = 0.3
    EPOCHS = 1
    LR = 3e-5
    HEAD_LR = 1e-3
    BATCH = 32
    WARMUP_STEPS = 100
    MAX_TOKENS = 128
    CLASSES = FittedStance.CLASSES

    def __init__(self, model: str | None = None, threshold: float = THRESHOLD, epochs: int = EPOCHS, lr: float = LR,
                 batch_size: int = BATCH, context: bool = True, seed: int = 0):
        from miner.embed import BUNDLED_MODEL

        self.model_ref = model or BUNDLED_MODEL
        self.threshold, self.epochs, self.lr, self.batch_size = threshold, epochs, lr, batch_size
        self.context, self.seed = context, seed
        self.tokenizer = self.encoder = self.head = None
        self.train_seconds = 0.0
        self._reading: tuple[list[str], list[str]] | None = None
        self._vader: VaderStance | None = None

    def reading(self, data: OpinionTexts) -> FineTunedStance:
        """The file whose units the next ``fit`` or ``scores`` call gets (their texts and sentences)."""
        index, units = _units(data, split_aspect_spans)
        self._reading = (units, [data.texts[i] for i in index])
        return self

    def _read(self, texts: Sequence[str]) -> list[str]:
        units, contexts = self._reading or ([], [])
        if list(texts) != units:
            raise ValueError("call reading(data) with the file whose units are given")
        return contexts

    def fit(self, vectors: np.ndarray, polarities: Sequence[Collection[str]]) -> FineTunedStance:
        """Fine-tune on the units of the file given to :meth:`reading`: frozen vectors for the head's
        start, each unit's possible polarities; ValueError as :meth:`FittedStance.fit`."""
        if self._reading is None:
            raise ValueError("call reading(data) with the file whose units are given")
        texts, contexts = self._reading
        return self.fit_units(vectors, polarities, texts, contexts)

    def fit_units(self, vectors: np.ndarray, polarities: Sequence[Collection[str]], texts: Sequence[str],
                  contexts: Sequence[str] | None = None) -> FineTunedStance:
        """Fine-tune on units: their texts, frozen vectors (the head's start), possible polarities and,
        with ``context``, the texts they were cut from."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        from miner.embed import resolve_model_path

        if self.context and (contexts is None or len(contexts) != len(texts)):
            raise ValueError("a stance that reads units in context needs one context per unit")
        start = FittedStance(c=FittedStance.C).fit(vectors, polarities)  # checks the polarities too
        target = torch.zeros((len(texts), len(self.CLASSES)))
        for unit, possible in enumerate(polarities):
            for polarity in possible:
                target[unit, self.CLASSES.index(polarity)] = 1.0 / len(possible)
        keep = [u for u in range(len(texts)) if target[u].sum() > 0]
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        path = resolve_model_path(self.model_ref)
        self.tokenizer, self.encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).float()
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, len(self.CLASSES))
        weight, bias = self._start_head(start.model)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(weight, dtype=torch.float32))
            self.head.bias.copy_(torch.tensor(bias, dtype=torch.float32))
        optimizer = torch.optim.AdamW([{"params": self.encoder.parameters(), "lr": self.lr},
                                       {"params": self.head.parameters(), "lr": self.HEAD_LR}], weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / self.WARMUP_STEPS))
        order_of = torch.Generator().manual_seed(self.seed)
        # As measured on validation: the first epoch without dropout (the model loads in eval mode),
        # the later ones with the model's own dropout (0.1).
        self.encoder.eval()
        for epoch in range(self.epochs):
            if epoch > 0:
                self.encoder.train()
            order = [keep[i] for i in torch.randperm(len(keep), generator=order_of).tolist()]
            for first in range(0, len(order), self.batch_size):
                batch = order[first:first + self.batch_size]
                logits = self.head(self._pooled([texts[u] for u in batch],
                                                [contexts[u] for u in batch] if self.context else None))
                loss = -(target[batch] * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        self.encoder.eval()
        self.train_seconds = time.perf_counter() - started
        return self

    def _start_head(self, regression) -> tuple[np.ndarray, np.ndarray]:
        """The logistic regression's weights as the head's start (rows in CLASSES order). With two
        classes it has one row, the second class's logit against the first's; a class it never saw
        starts far below (bias −10)."""
        weight = np.zeros((len(self.CLASSES), self.head.in_features))
        bias = np.full(len(self.CLASSES), -10.0)
        seen = [int(k) for k in regression.classes_]
        if len(seen) == 2:
            weight[seen[1]], bias[seen[1]], bias[seen[0]] = regression.coef_[0], regression.intercept_[0], 0.0
        else:
            weight[seen], bias[seen] = regression.coef_, regression.intercept_
        return weight, bias

    def _pooled(self, texts: Sequence[str], contexts: Sequence[str] | None):
        import torch

        batch = self.tokenizer(list(texts), None if contexts is None else list(contexts), padding=True,
                               truncation=True, max_length=self.MAX_TOKENS, return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)  # as the sentence model's own vectors

    def scores(self, texts: Sequence[str], vectors: np.ndarray | None = None,
               contexts: Sequence[str] | None = None) -> np.ndarray:
        """Unit scores; ``contexts`` (with ``context``) default to those of the file given to :meth:`reading`."""
        import torch

        if self.context and contexts is None and self.encoder is not None:
            contexts = self._read(texts)
        if self.encoder is None:
            raise ValueError("FineTunedStance.fit must be called before scores")
        if self.context and (contexts is None or len(contexts) != len(texts)):
            raise ValueError("a stance that reads units in context needs one context per unit")
        out = []
        with torch.no_grad():
            for first in range(0, len(texts), 128):
                probability = torch.softmax(self.head(self._pooled(
                    texts[first:first + 128], contexts[first:first + 128] if self.context else None)), dim=-1)
                out.append((probability[:, 0] - probability[:, 1]).numpy())
        return np.concatenate(out).astype(float) if out else np.zeros(0)

    def stances(self, texts: Sequence[str], vectors: np.ndarray | None = None,
                contexts: Sequence[str] | None = None) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts, vectors, contexts)]

    def aspect_text(self, text: str) -> str:
        """VADER's aspect text, so units cluster as they do with the default stance."""
        if self._vader is None:
            self._vader = VaderStance()
        return self._vader.aspect_text(text)



class FineTunedEnsemble:
    """The mean score of :class:`~miner.stance.FittedStance` (logistic regression on frozen vectors)
    and two fine-tuned encoders, one reading the unit alone and one reading it in its sentence (2
    epochs each); above ``threshold`` positive, below ``-threshold`` negative. The variant chosen on
    MAMS validation among the fine-tuned ones (BENCHMARKS.md § Opinions, "Stance fitted on labelled
    texts"); fits three models, so minutes to tens of minutes on CPU."""

    name = "fine-tuned ensemble (LR + unit + unit in its sentence)"
    THRESHOLD = 0.4

    def __init__(self, threshold: float = THRESHOLD, epochs: int = 2, seed: int = 0):
        self.threshold = threshold
        self.linear = FittedStance()
        self.members = [FineTunedStance(epochs=epochs, context=False, seed=seed),
                        FineTunedStance(epochs=epochs, context=True, seed=seed)]
        self._vader: VaderStance | None = None

    @property
    def train_seconds(self) -> float:
        return sum(m.train_seconds for m in self.members)

    def reading(self, data: OpinionTexts) -> FineTunedEnsemble:
        for member in self.members:
            member.reading(data)
        return self

    def fit(self, vectors: np.ndarray, polarities: Sequence[Collection[str]]) -> FineTunedEnsemble:
        self.linear.fit(vectors, polarities)
        for member in self.members:
            member.fit(vectors, polarities)
        return self

    def scores(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        every = [self.linear.scores(texts, vectors)] + [m.scores(texts, vectors) for m in self.members]
        return np.mean(every, axis=0)

    def stances(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts, vectors)]

    def aspect_text(self, text: str) -> str:
        if self._vader is None:
            self._vader = VaderStance()
        return self._vader.aspect_text(text)
