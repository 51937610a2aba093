"""`text.characters`: who is in a long text, with mentions, forms of address and quotes.

Pure Python and deterministic: the same input always gives the same output. It walks the
text in chunks and reports progress after each one. One job type and its one algorithm (mentions,
forms of address, quotes, grouping): kept whole rather than split, a little over 300 lines.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.settings import get_settings
from jobs import progress
from jobs.builtin.vocabulary import STOPWORDS, WORD
from jobs.registry import job_type

HONORIFICS = (
    "Mr|Mrs|Ms|Miss|Mx|Dr|Doctor|Sir|Dame|Lady|Lord|Captain|Capt|Professor|Prof|Aunt|Uncle|Madame|Madam|Monsieur"
    "|Master|Mistress|Inspector|Sergeant|Constable|Colonel|General|Major|Lieutenant|Reverend|Rev|Father|Sister"
    "|Brother|King|Queen|Prince|Princess|Duke|Duchess|Count|Countess|Baron|Baroness|Judge|Nurse|Old|Young|Little"
)
_HONORIFIC_SET = frozenset(HONORIFICS.split("|"))
_NAME_TOKEN = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:[-'’][A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+)?"
_MENTION = re.compile(
    rf"(?<![\w.])(?:(?P<title>{HONORIFICS})\.?[ \t]+)?(?P<name>{_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN}){{0,2}})(?!\w)"
)
_NAME_IN_ATTRIBUTION = rf"(?:(?:{HONORIFICS})\.?\s+)?{_NAME_TOKEN}(?:\s+{_NAME_TOKEN})?"
SPEECH_VERBS = (
    "said|says|asked|asks|replied|replies|answered|whispered|shouted|cried|called|muttered|murmured|exclaimed"
    "|added|continued|insisted|explained|laughed|sighed|snapped|protested|admitted|agreed|suggested|began"
    "|repeated|declared|announced|demanded|warned|wondered|yelled|screamed|breathed|growled|observed|remarked|retorted"
)
_QUOTE = re.compile(r"[\"“]([^\"“”\n]{1,3000})[\"”]")
_AFTER_SPEECH = re.compile(
    rf"[ \t]*,?[ \t]*(?:(?:{SPEECH_VERBS})\s+(?P<a>{_NAME_IN_ATTRIBUTION})"
    rf"|(?P<b>{_NAME_IN_ATTRIBUTION})\s+(?:\w+ly\s+)?(?:{SPEECH_VERBS})\b)"
)
_BEFORE_SPEECH = re.compile(rf"(?P<c>{_NAME_IN_ATTRIBUTION})\s+(?:\w+ly\s+)?(?:{SPEECH_VERBS})\s*[,:]?\s*$")
_OPENS_QUOTE = re.compile(r"\s*[,:]\s*[\"“]")
#: Verbs that, right after a name, say the name is a person's (places and things seldom smile).
PERSON_VERBS = frozenset(
    (SPEECH_VERBS.replace("|", " ") + " smiled nodded frowned grinned shrugged winked blushed wept sobbed").split()
)
_WORDS_AFTER = re.compile(r"\s+(?:\w+ly\s+)?([a-z]+)")
_SENTENCE_END = frozenset('.!?\n"“”:;')
#: Capitalised words that begin sentences but are no names, beside what STOPWORDS holds.
NOT_NAMES = frozenset(
    """Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July
    August September October November December God Chapter Part Book The Good Yes No Oh Ah Well Still Then
    Now Perhaps Suddenly Later Afterwards Meanwhile English French""".split()
)


class CharactersArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1,
        max_length=get_settings().max_string_chars,  # the service's limit on any string: one number, not two
        description="The text: a chapter or a whole book (at most MAX_STRING_CHARS characters)",
        examples=["“Ready?” asked Eleanor Voss. “Always,” said Tobias Crane. Eleanor Voss smiled at Tobias Crane."],
    )
    min_mentions: int = Field(2, ge=1, le=10_000, description="Fewest mentions for a name to count")
    max_characters: int = Field(50, ge=1, le=500, description="Most characters (and other candidates) returned")
    chunk_chars: int = Field(50_000, ge=1_000, le=1_000_000, description="Characters read between progress reports")


@dataclass
class _Form:
    """One surface form of a name (`Mr. Crane`, `Tobias Crane`, `Tobias`) and what was seen of it."""

    title: str
    tokens: tuple[str, ...]
    count: int = 0
    first_offset: int = -1
    inside_sentence: int = 0
    person_evidence: int = 0

    @property
    def text(self) -> str:
        return " ".join(
            ((f"{self.title}." if self.title in _ABBREVIATED else self.title,) if self.title else ()) + self.tokens
        )


_ABBREVIATED = frozenset({"Mr", "Mrs", "Ms", "Mx", "Dr", "Capt", "Prof", "Rev"})


@dataclass
class _Scan:
    """What the chunks taught us so far; `finish()` turns it into the result."""

    text: str
    forms: dict[tuple[str, tuple[str, ...]], _Form] = field(default_factory=dict)
    lowercase: Counter[str] = field(default_factory=Counter)
    speeches: list[tuple[int, str, str]] = field(default_factory=list)  # (offset, speaker form, first words)
    quotes: int = 0
    words: int = 0

    def read(self, start: int, end: int) -> None:
        chunk = self.text[start:end]
        for word in WORD.findall(chunk):
            self.words += 1
            if word[0].islower():
                self.lowercase[word] += 1
        for match in _MENTION.finditer(chunk):
            self._mention(chunk, start, match)
        attributed_until = -1
        for match in _QUOTE.finditer(chunk):
            self.quotes += 1
            speaker, span = self._speaker(chunk, match)
            if speaker and span[0] >= attributed_until:  # `"A," Eleanor said, "B."` is one line, not two
                self.speeches.append((start + match.start(), speaker, _first_words(match.group(1))))
                attributed_until = span[1]

    def _mention(self, chunk: str, base: int, match: re.Match[str]) -> None:
        title = match.group("title") or ""
        tokens = match.group("name").split()
        while tokens and (tokens[0].lower() in STOPWORDS or tokens[0] in NOT_NAMES):
            tokens.pop(0)
            title = ""
        if not tokens:
            return
        if tokens[0] in _HONORIFIC_SET and len(tokens) > 1 and not title:
            title, tokens = tokens[0], tokens[1:]
        key = (title, tuple(tokens))
        form = self.forms.get(key)
        if form is None:
            form = self.forms[key] = _Form(title, tuple(tokens), first_offset=base + match.start())
        form.count += 1
        if title or not _starts_sentence(chunk, match.start("name")):
            form.inside_sentence += 1
        after = _WORDS_AFTER.match(chunk, match.end())
        if after and after.group(1) in PERSON_VERBS:
            form.person_evidence += 1

    def _speaker(self, chunk: str, quote: re.Match[str]) -> tuple[str | None, tuple[int, int]]:
        """Who says `quote` (`"…," said Eleanor` / `Eleanor said, "…"`) and where that attribution is."""
        after = _AFTER_SPEECH.match(chunk, quote.end(), min(len(chunk), quote.end() + 80))
        body = quote.group(1).rstrip()
        if after and (body.endswith(".") or (body.endswith(("?", "!")) and _OPENS_QUOTE.match(chunk, after.end()))):
            after = None  # `"Done." Ann said, "…"` / `"Done?" Ann asked, "…"`: the attribution is the next quote's
        if after and _is_name(after.group("a") or after.group("b")):
            return " ".join((after.group("a") or after.group("b")).split()), after.span()
        before = _BEFORE_SPEECH.search(chunk, max(0, quote.start() - 80), quote.start())
        if before and _is_name(before.group("c")):
            return " ".join(before.group("c").split()), before.span()
        return None, (0, 0)


def _is_name(text: str | None) -> bool:
    return text is not None and text.split()[0].lower() not in STOPWORDS  # `He said` names nobody


def _split_title(name: str) -> tuple[str, tuple[str, ...]]:
    """`Mr. Tobias Crane` -> ("Mr", ("Tobias", "Crane")): the key its forms are filed under."""
    parts = name.replace(".", " ").split()
    if len(parts) > 1 and parts[0] in _HONORIFIC_SET:
        return parts[0], tuple(parts[1:])
    return "", tuple(parts)


def _starts_sentence(chunk: str, index: int) -> bool:
    i = index - 1
    while i >= 0 and chunk[i] in " \t\r'‘(":
        i -= 1
    return i < 0 or chunk[i] in _SENTENCE_END


def _first_words(quote: str, limit: int = 80) -> str:
    quote = " ".join(quote.split())
    return quote if len(quote) <= limit else quote[: limit - 1].rsplit(" ", 1)[0] + "…"


def _chunk_bounds(text: str, size: int) -> list[tuple[int, int]]:
    """Chunks of about `size` characters that end at a paragraph break (else a line break, else a space)."""
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            floor = start + size // 2
            for separator in ("\n\n", "\n", ". ", " "):
                cut = text.rfind(separator, floor, end)
                if cut != -1:
                    end = cut + len(separator)
                    break
        bounds.append((start, end))
        start = end
    return bounds


def _excerpt(text: str, offset: int, radius: int = 60) -> str:
    start = max(0, text.rfind("\n", max(0, offset - radius), offset) + 1, offset - radius)
    end = text.find("\n", offset, offset + radius)
    snippet = text[start : end if end != -1 else offset + radius]
    return " ".join(snippet.split())


class _Character:
    def __init__(self, head: _Form) -> None:
        self.forms = [head]

    @property
    def name(self) -> str:
        full = [f for f in self.forms if len(f.tokens) >= 2]
        pool = full or self.forms
        return max(pool, key=lambda f: (len(f.tokens), f.count, -f.first_offset)).text

    @property
    def mentions(self) -> int:
        return sum(f.count for f in self.forms)

    @property
    def first_offset(self) -> int:
        return min(f.first_offset for f in self.forms)

    def tokens(self) -> set[str]:
        return {token for f in self.forms for token in f.tokens}


def _group(forms: list[_Form], lowercase: Counter[str]) -> list[_Character]:
    """Forms -> characters: a lone first or last name, or title + surname, joins the one full name it fits."""

    def common_word(form: _Form) -> bool:
        if form.title or len(form.tokens) > 1:
            return False
        token = form.tokens[0]
        if token in NOT_NAMES or token.lower() in STOPWORDS:
            return True
        return lowercase[token.lower()] > form.count // 2 or not (form.inside_sentence or form.person_evidence)

    kept = [f for f in forms if not common_word(f)]
    characters = [_Character(f) for f in kept if len(f.tokens) >= 2]
    by_token: dict[str, list[_Character]] = {}  # first/last name or bare title -> characters it may mean

    def file_under(character: _Character, form: _Form) -> None:
        for key in {form.tokens[0], form.tokens[-1], form.title} - {""}:
            if character not in by_token.setdefault(key, []):
                by_token[key].append(character)

    for character in characters:
        file_under(character, character.forms[0])
    # titled forms first (`Captain Marlowe` before a bare `Marlowe` or `Captain`), frequent before rare
    single = sorted((f for f in kept if len(f.tokens) == 1), key=lambda f: (not f.title, -f.count, f.first_offset))
    for form in single:
        owners = by_token.get(form.tokens[0], [])
        if len(owners) == 1:
            owners[0].forms.append(form)
            file_under(owners[0], form)
        elif not owners:
            character = _Character(form)
            characters.append(character)
            file_under(character, form)
    return characters


@job_type(
    "text.characters",
    args=CharactersArgs,
    description="Find the characters of a long text: names, mentions, first appearance, who speaks",
    queue="default",
    timeout=300,
    retries=1,
)
def characters(text: str, min_mentions: int = 2, max_characters: int = 50, chunk_chars: int = 50_000) -> dict[str, Any]:
    scan = _Scan(text)
    bounds = _chunk_bounds(text, chunk_chars)
    for number, (start, end) in enumerate(bounds, 1):
        scan.read(start, end)
        progress.report(number * 95 / len(bounds), f"chunk {number}/{len(bounds)}: {len(scan.forms)} name forms so far")

    groups = _group(list(scan.forms.values()), scan.lowercase)
    owner = {(form.title, form.tokens): group for group in groups for form in group.forms}
    for group in groups:
        for form in group.forms:
            owner.setdefault(("", form.tokens), group)
    spoken: dict[int, list[tuple[int, str]]] = {}
    attributed = 0
    for offset, speaker, words in scan.speeches:
        title, tokens = _split_title(speaker)
        speaking = owner.get((title, tokens)) or owner.get(("", tokens))
        if speaking is not None:
            spoken.setdefault(id(speaking), []).append((offset, words))
            attributed += 1

    people: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for group in sorted(groups, key=lambda g: (-g.mentions, g.first_offset)):
        if group.mentions < min_mentions:
            continue
        lines = spoken.get(id(group), [])
        entry: dict[str, Any] = {
            "name": group.name,
            "aliases": [
                f.text for f in sorted(group.forms, key=lambda f: (-f.count, f.first_offset)) if f.text != group.name
            ],
            "mentions": group.mentions,
            "first_appearance": {
                "offset": group.first_offset,
                "line": text.count("\n", 0, group.first_offset) + 1,
                "excerpt": _excerpt(text, group.first_offset),
            },
            "speaks": len(lines),
            "first_words": lines[0][1] if lines else None,
        }
        evidence = lines or any(f.title or f.person_evidence for f in group.forms)
        (people if evidence else others).append(entry)

    progress.report(100, f"found {len(people[:max_characters])} characters")
    return {
        "characters": people[:max_characters],
        "other_names": [{k: e[k] for k in ("name", "mentions", "first_appearance")} for e in others[:max_characters]],
        "stats": {
            "chars": len(text),
            "words": scan.words,
            "chunks": len(bounds),
            "dialogue_lines": scan.quotes,
            "attributed_lines": attributed,
        },
    }
