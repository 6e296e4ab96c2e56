"""The free-text query language, parsed once and rendered by each store engine.

Words are required terms, "double-quoted text" is a phrase, and a word ending in * is a
prefix. Everything else (operators, punctuation, SQL or FTS syntax) is only a separator, so
no user input can reach an engine's query parser unescaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ValidationFailed

_WORD = re.compile(r"[^\W_]+")
_PART = re.compile(r'"([^"]*)"?|(\S+)')
MAX_TERMS = 16


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # one word, or the words of a phrase in order
    prefix: bool = False


def parse(query: str) -> list[Term]:
    terms: list[Term] = []
    for phrase, bare in _PART.findall(query):
        if phrase:
            words = tuple(w.lower() for w in _WORD.findall(phrase))
            if words:
                terms.append(Term(words))
            continue
        words = [w.lower() for w in _WORD.findall(bare)]
        if not words:
            continue
        prefix = bare.endswith("*")
        for w in words[:-1]:
            terms.append(Term((w,)))
        terms.append(Term((words[-1],), prefix))
    if query.strip() and not terms:
        raise ValidationFailed([("query", "has no words to search for")])
    if len(terms) > MAX_TERMS:
        raise ValidationFailed([("query", f"must have at most {MAX_TERMS} terms")])
    return terms
