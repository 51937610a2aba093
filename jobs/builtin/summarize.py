"""`text.summarize`: consolidate a conversation into its key sentences and keywords (LLM memory).

Pure Python and deterministic: the same input always gives the same output. It walks the
turns in chunks and reports progress after each one, then streams the summary (its job output)
sentence by sentence as it builds it: the output ends up equal to the result's `summary`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs import progress
from jobs.builtin.vocabulary import STOPWORDS, WORD
from jobs.output import write_output
from jobs.registry import job_type


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$", description="user, assistant, system, tool…")
    content: str = Field(max_length=20_000)


class SummarizeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turns: list[Turn] = Field(min_length=1, max_length=2_000, description="The conversation, oldest turn first")
    max_sentences: int = Field(5, ge=1, le=50, description="Longest summary, in sentences")
    max_keywords: int = Field(8, ge=1, le=50, description="Most keywords returned")


ROLE_WEIGHT = {"user": 1.0, "assistant": 0.8, "system": 0.4, "tool": 0.3}
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I’m|I've|I’d|I'd|my|My|we|We|our|Our)\b")
#: Overlap of content words above which a sentence repeats one already chosen.
REDUNDANCY = 0.5


def _terms(sentence: str) -> list[tuple[str, str]]:
    """Content words as (term, surface form): lower case, stopwords dropped, a plural `s` folded."""
    terms = []
    for found in WORD.findall(sentence):
        word = found.lower().replace("’", "'").split("'")[0]
        if len(word) < 3 or word in STOPWORDS:
            continue
        term = word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")) else word
        terms.append((term, word))
    return terms


@dataclass
class _Sentence:
    turn: int
    index: int
    role: str
    text: str
    terms: list[str]
    score: float = 0.0


@job_type(
    "text.summarize",
    args=SummarizeArgs,
    description="Consolidate a conversation ({role, content} turns) into an extractive summary and keywords",
    queue="default",
    timeout=120,
    retries=1,
)
def summarize(turns: list[dict[str, Any]], max_sentences: int = 5, max_keywords: int = 8) -> dict[str, Any]:
    sentences: list[_Sentence] = []
    document_frequency: Counter[str] = Counter()
    term_frequency: dict[str, float] = {}  # weighted by role
    surface: dict[str, Counter[str]] = {}
    step = max(1, len(turns) // 10)
    for number, turn in enumerate(turns):
        role, content = turn["role"], turn["content"]
        seen: set[str] = set()
        for index, match in enumerate(_SENTENCE.finditer(content)):
            text = " ".join(match.group().split())
            pairs = _terms(text)
            if not pairs:
                continue
            sentences.append(_Sentence(number, index, role, text, [term for term, _ in pairs]))
            for term, word in pairs:
                term_frequency[term] = term_frequency.get(term, 0.0) + ROLE_WEIGHT.get(role, 0.5)
                surface.setdefault(term, Counter())[word] += 1
                seen.add(term)
        document_frequency.update(seen)
        if (number + 1) % step == 0 or number + 1 == len(turns):
            progress.report((number + 1) * 80 / len(turns), f"read turn {number + 1}/{len(turns)}")

    weight = {term: tf * math.log(1 + len(turns) / document_frequency[term]) for term, tf in term_frequency.items()}
    for sentence in sentences:
        unique = set(sentence.terms)
        score = sum(weight[t] for t in unique) / math.sqrt(len(sentence.terms) + 2)
        score *= ROLE_WEIGHT.get(sentence.role, 0.5)
        if sentence.role == "user" and _FIRST_PERSON.search(sentence.text):
            score *= 1.25  # what the user says about themselves is what a memory keeps
        sentence.score = score if len(unique) >= 2 else score / 4
    progress.report(90, f"scored {len(sentences)} sentences")

    chosen: list[_Sentence] = []
    for sentence in sorted(sentences, key=lambda s: (-s.score, s.turn, s.index)):
        if len(chosen) == max_sentences:
            break
        terms = set(sentence.terms)
        if all(len(terms & set(c.terms)) / len(terms | set(c.terms)) <= REDUNDANCY for c in chosen):
            chosen.append(sentence)
    chosen.sort(key=lambda s: (s.turn, s.index))

    ranked = sorted(weight.items(), key=lambda item: (-item[1], item[0]))[:max_keywords]
    keywords = [{"keyword": surface[term].most_common(1)[0][0], "score": round(score, 3)} for term, score in ranked]
    total_chars = sum(len(turn["content"]) for turn in turns)
    summary_chars = sum(len(s.text) for s in chosen)
    parts = []
    for sentence in chosen:
        parts.append(f"{sentence.role.capitalize()}: {sentence.text}")
        write_output(f" {parts[-1]}" if len(parts) > 1 else parts[-1])
    progress.report(100, f"kept {len(chosen)} of {len(sentences)} sentences")
    return {
        "summary": " ".join(parts),
        "sentences": [{"turn": s.turn, "role": s.role, "text": s.text} for s in chosen],
        "keywords": keywords,
        "stats": {
            "turns": len(turns),
            "sentences": len(sentences),
            "chars": total_chars,
            "compression": round(summary_chars / total_chars, 3) if total_chars else 0.0,
        },
    }
