"""The default system line of a chat template: keep it, replace it or remove it (`llm.system_line`).

Why: instruct models' templates often insert a system turn when the conversation has none (SmolLM2:
"You are a helpful AI assistant named SmolLM, trained by Hugging Face"). Those tokens cost context and
steer the answers, so a user wants to choose. The default line is found by rendering the template
twice (no system turn, and a probe system turn): the text where the two renderings differ is the
default line. Replacing edits the template source where that line is written literally; removing empties the one
quoted string literal that writes it (for SmolLM2 and Qwen2 that literal is the whole default turn,
markers included). A template that builds the line some other way gets a clear error asking for
`llm.chat_template`.
"""

from __future__ import annotations

_PROBE_SYSTEM = "\u2063paralm-system-probe\u2063"
_PROBE_USER = "\u2063paralm-user-probe\u2063"


def _render(tok, messages: list[dict]) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def default_system_line(tok) -> str | None:
    """The system text the template inserts on its own, or None when it inserts none."""
    plain = _render(tok, [{"role": "user", "content": _PROBE_USER}])
    probed = _render(tok, [{"role": "system", "content": _PROBE_SYSTEM}, {"role": "user", "content": _PROBE_USER}])
    start = probed.find(_PROBE_SYSTEM)
    if start < 0:
        return None
    before, after = probed[:start], probed[start + len(_PROBE_SYSTEM):]
    if not plain.startswith(before) or not plain.endswith(after):
        return None
    end = len(plain) - len(after)
    line = plain[len(before):end]
    return line or None


def _jinja_literal(text: str) -> str:
    """`text` as it must appear inside a single-quoted Jinja string in the template source."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _enclosing_literal(template: str, text: str) -> tuple[int, int] | None:
    """(start, end) of the contents of the one quoted Jinja string literal in `template` holding `text`."""
    if template.count(text) != 1:
        return None
    at = template.find(text)
    for quote in ("'", '"'):
        left = template.rfind(quote, 0, at)
        right = template.find(quote, at + len(text))
        if left >= 0 and right >= 0 and "{{" not in template[left:right] and "{%" not in template[left:right]:
            return left + 1, right
    return None


def _template_without_default_turn(template: str, line: str) -> str | None:
    """Template source with the string literal that writes the default turn (markers and line) emptied."""
    for variant in (line, line.replace("\n", "\\n")):
        span = _enclosing_literal(template, variant)
        if span is not None:
            return template[: span[0]] + template[span[1]:]
    return None


def apply_system_line(tok, system_line: str | None) -> None:
    """Keep (None), remove ("") or replace (any other text) the template's default system line in place."""
    if system_line is None or not getattr(tok, "chat_template", None):
        return
    line = default_system_line(tok)
    if line is None:
        if system_line == "":
            return  # nothing to remove
        raise ValueError("llm.system_line: the chat template inserts no default system line to replace; "
                         "set the system prompt with data prompt `system:` instead")
    template = tok.chat_template
    if system_line == "":
        edited = _template_without_default_turn(template, line)
    else:
        new = _jinja_literal(system_line)
        edited = next((template.replace(v, n) for v, n in ((line, new), (line.replace("\n", "\\n"), new))
                       if template.count(v) == 1), None)
    if edited is None:
        raise ValueError("llm.system_line: the template does not write its default system line literally; "
                         "give a whole template in llm.chat_template instead")
    tok.chat_template = edited
    if system_line == "" and line in _render(tok, [{"role": "user", "content": _PROBE_USER}]):
        raise ValueError("llm.system_line: could not remove the default system turn; set llm.chat_template")
