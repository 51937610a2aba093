"""Known texts for the text jobs: a short hand-written story and a generated novel of any size
whose cast, mentions and dialogue lines are counted while it is written (the expected answers)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def lighthouse() -> str:
    """A 2.5 KB story written for these tests: Eleanor Voss, Tobias Crane, Captain Marlowe, Mrs. Abernathy."""
    return (DATA / "lighthouse.txt").read_text(encoding="utf-8")


#: canonical name -> the forms the generator uses for it (the first is the full name)
CAST: dict[str, tuple[str, ...]] = {
    "Harriet Quill": ("Harriet Quill", "Harriet", "Miss Quill"),
    "Osric Fenwick": ("Osric Fenwick", "Osric", "Mr. Fenwick"),
    "Dr. Imogen Sallow": ("Dr. Imogen Sallow", "Imogen", "Dr. Sallow"),
    "Bartholomew Wren": ("Bartholomew Wren", "Bartholomew"),
    "Captain Thaddeus Moor": ("Captain Thaddeus Moor", "Thaddeus", "Captain Moor"),
}
PLACES = ("Ashcombe", "Kellingford", "Marrow Hill")
NARRATION = (
    "The rain had not stopped for three days, and the roads out of {place} were rivers of mud.",
    "{name} walked to the window and watched the carts go by.",
    "Nobody in {place} remembered a winter as long as this one.",
    "{name} smiled at the thought and went back to the letters on the desk.",
    "It was late in the afternoon when the bell above the door rang again.",
    "The shop smelled of ink, old paper and the coal stove in the corner.",
    "{name} and {other} had not spoken since the market closed.",
    "A dog barked somewhere behind the church, and then the street was quiet.",
    "{name} counted the coins twice before putting them away.",
    "The clock on the mantel was slow, as it had always been.",
)
QUOTES = (
    "We should leave before the river rises",
    "I have read every page of it and found nothing",
    "You promised me the key would be here",
    "There is no point in waiting for the coach tonight",
    "Tell me again what you saw at the mill",
    "The letter was never meant for you",
    "If the bridge holds, we cross at dawn",
    "I do not believe a word of that story",
)
SPEECH = (
    '"{quote}," said {name}.',
    '"{quote}," {name} said quietly.',
    '{name} asked, "{quote}?"',
    '"{quote}," {name} replied.',
)
UNATTRIBUTED = ('"{quote}," she said.', '"{quote}."', '"{quote}," he whispered.')


@dataclass
class Novel:
    text: str
    mentions: Counter[str] = field(default_factory=Counter)
    speaks: Counter[str] = field(default_factory=Counter)

    def first_offset(self, who: str) -> int:
        """Each character enters under their full name, so that is where they first appear."""
        return self.text.index(CAST[who][0])


def generated_novel(min_chars: int, seed: int = 7) -> Novel:
    """Paragraphs of narration and dialogue until `min_chars`; every name placed is counted."""
    rng = random.Random(seed)
    novel = Novel("")
    introduced: set[str] = set()
    parts: list[str] = []
    size = chapter = 0

    def place(who: str) -> str:
        form = rng.choice(CAST[who]) if who in introduced else CAST[who][0]
        introduced.add(who)
        novel.mentions[who] += 1
        return form

    while size < min_chars:
        if chapter == 0 or rng.random() < 0.02:
            chapter += 1
            parts.append(f"Chapter {chapter}")
        sentences: list[str] = []
        for _ in range(rng.randint(2, 5)):
            kind = rng.random()
            who, other = rng.sample(sorted(CAST), 2)
            if kind < 0.45:
                template = rng.choice(NARRATION)
                name = place(who) if "{name}" in template else ""
                other_name = place(other) if "{other}" in template else ""
                sentences.append(template.format(place=rng.choice(PLACES), name=name, other=other_name))
            elif kind < 0.85 and who in introduced:
                sentences.append(rng.choice(SPEECH).format(quote=rng.choice(QUOTES), name=place(who)))
                novel.speaks[who] += 1
            else:
                sentences.append(rng.choice(UNATTRIBUTED).format(quote=rng.choice(QUOTES)))
        parts.append(" ".join(sentences))
        size += len(parts[-1]) + 2
    novel.text = "\n\n".join(parts)
    return novel


def conversation() -> list[dict[str, str]]:
    """A support-style chat written for these tests: a user planning a move to Lisbon, learning Portuguese."""
    return [
        {"role": "system", "content": "You are a helpful assistant. Keep answers short."},
        {"role": "user", "content": "Hi! I'm Dana. I am moving to Lisbon in March for a new job at a design studio."},
        {
            "role": "assistant",
            "content": "Congratulations on the new job! Lisbon is a lovely city. "
            "Would you like help with housing, paperwork or the language?",
        },
        {
            "role": "user",
            "content": "The language, mostly. I have been learning Portuguese for two months with an app. "
            "My pronunciation of Portuguese vowels is still terrible.",
        },
        {
            "role": "assistant",
            "content": "European Portuguese vowels are hard because unstressed vowels are often reduced. "
            "Listening to Portuguese podcasts every day helps with pronunciation. "
            "Shadowing, repeating a sentence right after a native speaker, is also effective.",
        },
        {"role": "user", "content": "Thanks. I also need a flat near the studio, which is in Alcântara."},
        {
            "role": "assistant",
            "content": "Alcântara is well connected by tram and train. "
            "Flats near the river cost more, so look a few streets inland. "
            "Most landlords in Lisbon ask for two months of deposit.",
        },
        {"role": "user", "content": "I am vegetarian, by the way. Is it easy to eat out in Lisbon as a vegetarian?"},
        {
            "role": "assistant",
            "content": "Yes. Lisbon has many vegetarian restaurants, and most tascas can make a vegetarian dish. "
            "Ask for a prato vegetariano.",
        },
        {"role": "user", "content": "Great. My budget for the flat is 1200 euros a month. Ok, thank you!"},
        {"role": "assistant", "content": "You're welcome. Good luck with the move!"},
    ]
