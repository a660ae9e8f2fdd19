"""Template QA pairs (no LLM): C / CP / DP pairs written from the transcript and the labels.

For offline use and for the demo's implicit source, so the phrasing matters: C answers quote what was
said; CP answers name the emotion and relate it to what was said ("The speaker sounds sad while saying
they got the job, which suggests ..."); DP answers name the emotion, with energy or polarity words when
the dimensional labels are known. Several phrasings per type; which ones a clip gets is drawn with an
RNG seeded by (seed, key), so a clip's pairs do not depend on which other clips are in the run. Every
template states what its question asks (`asks`, recorded on each pair), so scorers never guess it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from paralm.creation.generate.inputs import GenInput

TEMPLATE_VERSION = "template-qa/2"  # 2: pairs record what they ask (`asks`)

IMPLICATION = {
    "neutral": "they are stating it matter-of-factly, without strong feelings about it",
    "happy": "they are pleased about it and want to share the good feeling",
    "sad": "it weighs on them and they may feel disappointed or hurt",
    "angry": "they are frustrated about it and may feel they were treated unfairly",
    "fearful": "they are worried about it and uneasy about what may happen next",
    "surprised": "it was unexpected for them and caught them off guard",
    "disgusted": "they find it distasteful and want to distance themselves from it",
}
RESPONSE = {
    "neutral": "a calm, attentive reply fits: acknowledge what they said and ask whether they need anything else",
    "happy": "share their good mood, for example: \"That's wonderful, I'm really glad for you!\"",
    "sad": "offer comfort, for example: \"I'm sorry, that sounds hard. Do you want to talk about it?\"",
    "angry": "stay calm and acknowledge the frustration, for example: \"That sounds really frustrating; "
             "let's see what we can do.\"",
    "fearful": "reassure them, for example: \"It's understandable to be worried; let's go through it together.\"",
    "surprised": "acknowledge the surprise, for example: \"Wow, I didn't see that coming either!\"",
    "disgusted": "validate the reaction, for example: \"That does sound unpleasant; I understand why it bothers you.\"",
}
# first-person words -> third person, so a transcript can be reported ("I got the job" -> "they got the job")
_PERSON = {"i": "they", "i'm": "they're", "i've": "they've", "i'll": "they'll", "i'd": "they'd", "me": "them",
           "my": "their", "mine": "theirs", "myself": "themselves", "am": "are", "we": "they", "we're": "they're",
           "we've": "they've", "we'll": "they'll", "us": "them", "our": "their", "ours": "theirs"}
_WAS_AFTER = {"they": "were"}
# capitalised only because they start the sentence (names keep their capital)
_SENTENCE_STARTERS = frozenset("the a an it this that these those there here what where when why how who "
                               "she he you your yes no not so and but well oh please can could would do did "
                               "is are was were have has had let today tomorrow yesterday".split())


def third_person(text: str) -> str:
    """A light rewrite of a transcript into reported speech: pronouns and 'I was' -> 'they were'."""
    words = text.strip().rstrip(".!?").split()
    out: list[str] = []
    for w in words:
        core = w.strip(",;:\"'").lower()
        repl = _PERSON.get(core)
        if core == "was" and out and out[-1] in _WAS_AFTER:
            repl = _WAS_AFTER[out[-1]]
        out.append(w.lower().replace(core, repl) if repl else w)
    if out and out[0].lower() in _SENTENCE_STARTERS:
        out[0] = out[0].lower()
    return " ".join(out)


def _arousal(labels: dict) -> str:
    a = labels.get("arousal")
    if a is None:
        return ""
    return "low-energy, subdued" if a < 0.4 else "animated, high-energy" if a > 0.6 else "moderately energetic"


def _polarity(labels: dict) -> str:
    v = labels.get("valence")
    if v is None:
        return ""
    return "mostly negative" if v < 0.4 else "mostly positive" if v > 0.6 else "fairly neutral"


def _saying(inp: GenInput) -> str:
    """'saying they got the job' or 'asking whether ...' for questions."""
    verb = "asking" if inp.transcript.rstrip().endswith("?") else "saying"
    return f"{verb} {third_person(inp.transcript)}"


def _quote(inp: GenInput) -> str:
    return inp.transcript.strip()


# (question, answer from the clip, whether the clip can have it, what the question asks: schema.QA_ASKS)
Pair = tuple[str, Callable[[GenInput], str], Callable[[GenInput], bool], str]
_ALWAYS: Callable[[GenInput], bool] = lambda inp: True  # noqa: E731

TEMPLATES: dict[str, list[Pair]] = {
    "C": [
        ("What does the speaker say?", lambda x: f"The speaker says: \"{_quote(x)}\"", _ALWAYS, "content"),
        ("Can you repeat what was said in this clip?", lambda x: f"They said: \"{_quote(x)}\"", _ALWAYS, "content"),
        ("What is the speaker talking about?", lambda x: f"The speaker is {_saying(x)}.", _ALWAYS, "content"),
        ("Transcribe the speech in this recording.", lambda x: _quote(x), _ALWAYS, "content"),
    ],
    "CP": [
        ("How does the speaker seem to feel about what they are saying?",
         lambda x: f"The speaker sounds {x.emotion} while {_saying(x)}, which suggests {IMPLICATION[x.emotion]}.",
         _ALWAYS, "context"),
        ("Why might the speaker sound the way they do?",
         lambda x: f"They sound {x.emotion}; given that they are {_saying(x)}, it seems {IMPLICATION[x.emotion]}.",
         _ALWAYS, "context"),
        ("How would you respond to the speaker in an empathetic way?",
         lambda x: f"The speaker sounds {x.emotion} while {_saying(x)}, so {RESPONSE[x.emotion]}", _ALWAYS, "context"),
        ("What does the speaker's tone add to the meaning of their words?",
         lambda x: f"Their {x.emotion} tone while {_saying(x)} suggests {IMPLICATION[x.emotion]}.", _ALWAYS, "context"),
    ],
    "DP": [
        ("What emotion does the speaker convey?",
         lambda x: f"The speaker sounds {x.emotion}." + (f" Their delivery is {_arousal(x.labels)}."
                                                           if _arousal(x.labels) else ""), _ALWAYS, "emotion"),
        ("How would you describe the speaker's emotional state?",
         lambda x: f"They come across as {x.emotion}.", _ALWAYS, "emotion"),
        ("Does the speaker sound positive or negative?",
         lambda x: f"The speaker sounds {x.emotion}, so the overall tone is {_polarity(x.labels)}.",
         lambda x: bool(_polarity(x.labels)), "valence"),
        ("How energetic does the speaker sound?",
         lambda x: f"The speaker sounds {x.emotion} and {_arousal(x.labels)}.", lambda x: bool(_arousal(x.labels)), "arousal"),
        ("Is the speaker's voice male or female?",
         lambda x: f"The voice sounds {x.labels.get('gender')}, and the speaker sounds {x.emotion}.",
         lambda x: x.labels.get("gender") in ("female", "male"), "gender"),
    ],
}


class TemplateError(ValueError):
    """A clip the templates cannot describe; `.reason` is "no_transcript" or "no_labels"."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def template_pairs(inp: GenInput, seed: int, pairs_min: int = 3, pairs_max: int = 6) -> list[dict]:
    """Between `pairs_min` and `pairs_max` pairs (at least one per type, as many as the templates allow).

    Raises TemplateError when the clip has no transcript or no emotion label from the chosen source.
    """
    if not inp.transcript:
        raise TemplateError("no_transcript", f"{inp.key} has an empty transcript")
    if inp.emotion not in IMPLICATION:
        raise TemplateError("no_labels", f"{inp.key} has no emotion label from the chosen source")
    rng = random.Random(f"{seed}:{inp.key}")
    pools = {t: [p for p in TEMPLATES[t] if p[2](inp)] for t in TEMPLATES}
    for pool in pools.values():
        rng.shuffle(pool)
    chosen = {t: [pool.pop()] for t, pool in pools.items()}
    rest = [(t, p) for t, pool in pools.items() for p in pool]
    rng.shuffle(rest)
    n = rng.randint(max(pairs_min, len(chosen)), max(pairs_min, pairs_max, len(chosen)))
    for t, p in rest[: max(0, n - len(chosen))]:
        chosen[t].append(p)
    return [{"type": t, "question": q, "answer": _tidy(answer(inp)), "asks": asks}
            for t in TEMPLATES for q, answer, _, asks in chosen[t]]


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
