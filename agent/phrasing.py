"""How people phrase a short answer: yes, skip, a correction, a greeting, junk, a list, a phrase.

Every function here is pure: text in, what it says out, nothing stored.
"""

from __future__ import annotations

import re

_CORRECTION = re.compile(
    r"^(?:no+|nope|actually|wait|sorry|oops|correction|i meant|rather|not quite)\b[\s,.:;!—–-]*",
    re.IGNORECASE,
)


_DECLINED = re.compile(
    r"^(?:no|without)\s+(?P<part>style|tone|rules?|constraints?|(?:special |edge )?cases"
    r"|requirements?|system prompt)\b[\s,.;:!—–-]*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


_DECLINABLE_PARTS = {
    "style": "style",
    "tone": "style",
    "rule": "constraints",
    "constraint": "constraints",
    "case": "requirements",
    "requirement": "requirements",
    "system prompt": "system_prompt",
}
"""The spec part each noun of ``_DECLINED`` names."""


_GREETING = re.compile(r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening))\b[\s,.!]*", re.I)


_SKIP = re.compile(
    r"^(?:skip(?: it| this| that)?|none|no+|nope|nothing|n/?a|pass|next|no thanks|not really"
    r"|no (?:rules|constraints|style|preference|cases|requirements|special cases)"
    r"|nothing special|none needed|not needed|doesn'?t matter|no idea|later)[.!]*$",
    re.IGNORECASE,
)


_YES = re.compile(
    r"^(?:y|yes|yep|yeah|yup|sure|ok|okay|accept(?: it)?|use it|looks good|lgtm|fine|good|great"
    r"|perfect|sounds good|that works|correct|right)\b[\s,.!]*(?:please|thanks|thank you)?[.!]*$",
    re.IGNORECASE,
)


LIST_SEPARATOR = re.compile(r"\s*(?:,|;|\||/|\band\b|\bor\b|&|\+)\s*", re.IGNORECASE)
"""What separates the items of a list written on one line ("a, b and c", "a / b")."""


_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+")


_WORD = re.compile(r"[^\W\d_]+")


_VOWELS = set("aeiouyäöüéèêáàíóúåæøœ")


_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def split_correction(text: str) -> tuple[bool, str]:
    """Whether ``text`` starts as a correction ("no, ...", "actually ..."), and the rest."""
    match = _CORRECTION.match(text)
    if match is None:
        return False, text
    return True, text[match.end() :].strip()


def declined_part(text: str) -> tuple[str, str] | None:
    """The spec part ``text`` says there is none of ("no style", "no rules, ..."), with the
    rest of the message; None when it declines no part by name."""
    match = _DECLINED.match(text.strip())
    if match is None:
        return None
    noun = match.group("part").lower().removeprefix("special ").removeprefix("edge ")
    part = _DECLINABLE_PARTS[noun.removesuffix("s") if noun != "system prompt" else noun]
    return part, match.group("rest").strip()


def strip_greeting(text: str) -> str:
    """``text`` without a leading "hi," or "hello!"."""
    return _GREETING.sub("", text, count=1).strip()


def is_skip(text: str) -> bool:
    """Whether ``text`` declines the question ("skip", "none", "no")."""
    return bool(_SKIP.match(text.strip()))


def is_yes(text: str) -> bool:
    """Whether ``text`` accepts a proposal ("yes", "ok", "looks good")."""
    return bool(_YES.match(text.strip()))


def looks_like_junk(text: str, *, min_words: int = 1) -> bool:
    """Whether ``text`` is no answer at all: symbols, keyboard mash, too few words."""
    visible = [char for char in text if not char.isspace()]
    if not visible:
        return True
    letters = sum(1 for char in visible if char.isalpha())
    if letters < 2 or letters / len(visible) < 0.5:
        return True
    words = _WORD.findall(text)
    real_words = [w for w in words if _is_wordlike(w)]
    if len(real_words) < min_words:
        return True
    return len(real_words) * 2 < len(words)


def _is_wordlike(word: str) -> bool:
    lowered = word.lower()
    if not any(char in _VOWELS for char in lowered):
        # Short vowel-less tokens are abbreviations (SQL, CRM, PDF); long ones are mashing.
        return len(lowered) <= 4 and word.isupper()
    if re.search(r"(.)\1{3,}", lowered):
        return False
    return not re.search(r"[^aeiouyäöüéèêáàíóúåæøœ]{6,}", lowered)


def is_junk_answer(text: str, *, min_words: int) -> bool:
    """Whether ``text`` is no answer to a question: junk, or mostly keyboard runs ("asdf")."""
    if looks_like_junk(text, min_words=min_words):
        return True
    words = re.findall(r"[a-z]+", text.lower())
    mashed = [w for w in words if len(w) >= 3 and any(w in row for row in _KEYBOARD_ROWS)]
    return bool(words) and len(mashed) * 2 >= len(words)


def split_items(text: str) -> list[str]:
    """The items of a list written as lines, bullets, or "a, b and c"."""
    text = text.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        pieces = [_BULLET.sub("", line) for line in lines]
    else:
        pieces = LIST_SEPARATOR.split(_BULLET.sub("", text).rstrip(".!"))
    items: list[str] = []
    seen: set[str] = set()
    for piece in pieces:
        item = unquote(piece.strip().rstrip(".!;,").strip())
        if item and item.casefold() not in seen:
            items.append(item)
            seen.add(item.casefold())
    return items


def split_sentences(text: str) -> list[str]:
    """Rules or notes written as lines, bullets or sentences."""
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines() if line.strip()]
    sentences: list[str] = []
    for line in lines:
        for sentence in re.split(r"(?<=[.!?;])\s+", line):
            cleaned = clean_phrase(sentence)
            if cleaned:
                sentences.append(cleaned)
    return sentences


def split_cases(text: str) -> list[str]:
    """Cases written as lines, bullets, "a; b" or a comma list of short phrases."""
    stripped = text.strip()
    if "\n" in stripped or ";" in stripped:
        parts = [_BULLET.sub("", p) for p in re.split(r"\n|;", stripped)]
    else:
        parts = re.split(r",\s*(?:and\s+|or\s+)?|\s+and\s+(?=\w+\s+\w+)", stripped)
        if any(len(part.split()) > 8 for part in parts):
            parts = [stripped]
    cases: list[str] = []
    for part in parts:
        cleaned = clean_phrase(part)
        if cleaned and cleaned.casefold() not in {c.casefold() for c in cases}:
            cases.append(cleaned)
    return cases


def clean_phrase(text: str) -> str:
    """``text`` with outer whitespace, quotes and end punctuation removed."""
    return unquote(" ".join(text.split()).strip().rstrip(".!;,").strip())


def unquote(text: str) -> str:
    """``text`` without one pair of matching outer quotes or backticks."""
    text = text.strip()
    pairs = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`"}
    if len(text) >= 2 and text[0] in pairs and text[-1] == pairs[text[0]]:
        return text[1:-1].strip()
    return text


def short(text: str) -> str:
    """``text`` on one line, quoted, cut to 30 characters."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 30 else flat[:29] + "…")


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
