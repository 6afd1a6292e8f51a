"""Label scoring strategies of eval (first-token mass, whole-word log-likelihood), chosen by settings.scoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from qtalign.errors import QtalignError
from qtalign.eval.settings import EvalSettings
from qtalign.prompts import LangPrompts
from qtalign.protocol import paper_label_token_sets
from qtalign.scoring import PrefixState, Scorer, TokenIndex, continuation_ids, label_token_sets


class LabelScoring(Protocol):
    """How one language's items are scored: a [B, L] score per label for a batch of encoded rows."""

    kind: ClassVar[str]  # the key of the per-label scores in a predictions row (and in content_free.json)

    def score(self, state: PrefixState, rows: Sequence[list[int]]) -> np.ndarray:
        """Scores [B, L] of the batch's rows (token ids after the shared prefix state)."""
        ...


@dataclass
class FirstToken:
    """The paper's constrained decoding: each label's summed next-token probability over the tokens that can begin
    its word (qtalign's token sets, or the paper scripts' with label_tokens paper)."""

    scorer: Scorer
    sets: list[list[int]]  # per label, the token ids whose probability mass it sums
    kind: ClassVar[str] = "probs"

    @staticmethod
    def token_index(tokenizer: Any) -> TokenIndex | None:
        return TokenIndex(tokenizer)

    @classmethod
    def for_language(cls, s: EvalSettings, scorer: Scorer, index: TokenIndex | None, lp: LangPrompts) -> FirstToken:
        assert index is not None
        try:
            if s.label_tokens == "paper":
                model_type = getattr(scorer.base.config, "model_type", None)
                sets = paper_label_token_sets(scorer.tokenizer, lp.label_words, model_type)
            else:
                sets = label_token_sets(index, lp.label_words)
        except QtalignError as e:
            raise QtalignError(f"language {lp.lang!r}: {e}") from None
        return cls(scorer, sets)

    def score(self, state: PrefixState, rows: Sequence[list[int]]) -> np.ndarray:
        return self.scorer.first_token_batch(state, rows, self.sets)  # [B, L]


@dataclass
class Loglik:
    """Exact log-likelihood of each whole label word (its tokens as they continue the prompt)."""

    scorer: Scorer
    ids: list[list[int]]  # per label, the token ids of its word in context
    kind: ClassVar[str] = "loglik"

    @staticmethod
    def token_index(tokenizer: Any) -> TokenIndex | None:
        return None

    @classmethod
    def for_language(cls, s: EvalSettings, scorer: Scorer, index: TokenIndex | None, lp: LangPrompts) -> Loglik:
        return cls(scorer, [continuation_ids(scorer.tokenizer, w) for w in lp.label_words])

    def score(self, state: PrefixState, rows: Sequence[list[int]]) -> np.ndarray:
        return self.scorer.loglik_batch(state, rows, self.ids)  # [B, L]


SCORINGS: dict[str, type[FirstToken | Loglik]] = {"first-token": FirstToken, "loglik": Loglik}


def token_index(s: EvalSettings, tokenizer: Any) -> TokenIndex | None:
    """The tokenizer index the settings' scoring needs once per run (first-token), else None."""
    return SCORINGS[s.scoring].token_index(tokenizer)


def label_scoring(s: EvalSettings, scorer: Scorer, index: TokenIndex | None, lp: LangPrompts) -> LabelScoring:
    """The settings' scoring strategy for one language (its label words resolved to token ids)."""
    return SCORINGS[s.scoring].for_language(s, scorer, index, lp)
