"""Text search for Chinese: character bigrams in a tsvector.

Chinese has no spaces, so PostgreSQL's word parsers see a whole sentence as one token. We index the
overlapping character bigrams of the searchable text (``占道经营`` -> ``占道 道经 经营``) in a
``tsvector`` with a GIN index, and turn a query into the AND of its bigrams. A one-character query
matches by prefix (``占:*``). ASCII runs (case numbers, street numbers) are kept as lower-cased whole
words and their bigrams too, so ``20261123`` and partial numbers match.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[0-9a-z]+|[^\s0-9a-z\W_]+|[\u3400-\u9fff\uf900-\ufaff]+", re.UNICODE)
MAX_TEXT = 4000
MAX_QUERY_TERMS = 32


def _runs(text: str) -> list[str]:
    return _TOKEN.findall(text.lower()[:MAX_TEXT])


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _quote(term: str) -> str:
    return "'" + term.replace("'", "''").replace("\\", "\\\\") + "'"


def document_terms(*texts: str) -> str:
    """The tsvector literal (space-separated quoted lexemes) for the given texts."""
    terms: set[str] = set()
    for text in texts:
        for run in _runs(text):
            terms.update(_bigrams(run))
            if run.isascii():
                terms.add(run)
    return " ".join(_quote(t) for t in sorted(terms))


def query_terms(q: str) -> str | None:
    """A tsquery literal matching documents that contain ``q`` (approximately: all its bigrams),
    or None if ``q`` has nothing searchable."""
    parts: list[str] = []
    for run in _runs(q):
        if len(run) == 1:
            parts.append(_quote(run) + ":*")
        else:
            parts.extend(_quote(t) for t in _bigrams(run))
    if not parts:
        return None
    uniq = list(dict.fromkeys(parts))[:MAX_QUERY_TERMS]
    return " & ".join(uniq)
