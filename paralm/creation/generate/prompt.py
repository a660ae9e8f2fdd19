"""The versioned prompt that asks an LLM for implicit QA pairs, and the JSON schema its answer must follow.

Why versioned: a generated pair is only as good as the prompt behind it, and prompts get edited. Every
pair records `PROMPT_VERSION` and `PROMPT_SHA256` (a hash of the exact instructions and schema), so two
data sets built with different prompts can never be mistaken for one another, and the API cache never
serves an answer written for an older prompt (the messages are part of its key).

The prompt gives the generator what the Speech-LLM will never see (the transcript, with timings when
known, and the paralinguistic labels) and asks for questions that can be answered from the audio alone.
"""

from __future__ import annotations

import hashlib
import json

from paralm.data.schema import QA_ASKS, QUESTION_TYPES

PROMPT_VERSION = "implicit-qa/2"  # 2: each pair states what it asks (`asks`)

SYSTEM = (
    "You write question-answer pairs that teach a speech model to understand how something is said. "
    "The speech model hears the audio clip but never sees a transcript or any labels, so every question "
    "must be answerable by listening alone, and every answer must be grounded in what the speaker says "
    "and how they say it. Reply with JSON only."
)

INSTRUCTIONS = """Here is what a listener could perceive in one short speech clip.

Speech (what is said{timing_note}):
{speech}

Paralinguistic cues (how it is said, from annotators):
{cues}

Write {n} question-answer pairs about this clip, spread across these types:
- "C" (content): about what the speaker says.
- "CP" (contextual paralinguistic): why or how the speaker feels given what they say, or how one should
  respond to them with empathy; the answer must combine the content with the emotion.
- "DP" (direct paralinguistic): the speaker's emotion, energy or attitude; the answer names the emotion.
Include at least one pair of each type.
Give each pair an "asks" field naming what its question is about: "content" for C, "context" for CP, and
for DP one of "emotion", "gender", "arousal" (energy), "valence" (positive or negative) or "dominance".

Rules:
- Ask as if you were listening to the clip: never mention a transcript, text, metadata, labels, annotations,
  scores or timestamps, and never ask about numbers from the cues.
- Keep answers short (one or two sentences) and consistent with the speech and the cues.
- Do not repeat or rephrase the same question.

Reply with a JSON object of this form and nothing else:
{{"pairs": [{{"type": "C", "asks": "content", "question": "...", "answer": "..."}}, ...]}}"""

PAIR_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": list(QUESTION_TYPES)},
                    "asks": {"type": "string", "enum": list(QA_ASKS)},
                    "question": {"type": "string"},
                    "answer": {"type": "string"},
                },
                "required": ["type", "asks", "question", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["pairs"],
    "additionalProperties": False,
}

PROMPT_SHA256 = hashlib.sha256(
    json.dumps([PROMPT_VERSION, SYSTEM, INSTRUCTIONS, PAIR_SCHEMA], sort_keys=True).encode()
).hexdigest()


def response_format() -> dict:
    """OpenAI structured-output request for `PAIR_SCHEMA` (sent with `--structured`)."""
    return {"type": "json_schema", "json_schema": {"name": "qa_pairs", "schema": PAIR_SCHEMA, "strict": True}}


def build_messages(speech: str, cues: str, n_pairs: int, timed: bool) -> list[dict]:
    """Chat messages asking for `n_pairs` pairs about one clip.

    Args:
        speech: the transcript, or time-aligned lines "[0.0-2.0 s] ..." when timings are known.
        cues: the paralinguistic cue lines (see `paralm.creation.generate.inputs.describe_labels`).
        n_pairs: how many pairs to ask for.
        timed: whether `speech` carries timings (changes one phrase of the instructions).
    """
    note = ", with times in seconds" if timed else ""
    user = INSTRUCTIONS.format(timing_note=note, speech=speech, cues=cues, n=n_pairs)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def generator_record() -> dict:
    """The prompt's identity, recorded in every generated pair's `generator` field."""
    return {"prompt_version": PROMPT_VERSION, "prompt_sha256": PROMPT_SHA256}
