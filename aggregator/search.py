"""A small lexical ranker (Okapi BM25) over tool names, descriptions and parameter names.

Built in memory from the catalog, without network access or a model: a thousand tools index in
a few milliseconds and a query scores only the tools that share one of its terms (posting
lists), so a search costs well under a millisecond of CPU.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

_WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_STOPWORDS = """a an and are as at be by can do does for from how i in into is it its me my of on or our
s that the their them this to use using via was what when which while with you your"""
STOPWORDS = frozenset(_STOPWORDS.split())


def stem(word: str) -> str:
    """A light English stemmer: plural and verb endings, enough for 'files' ~ 'file',
    'forecasting' ~ 'forecast', 'uploaded' ~ 'upload', 'sales' ~ 'sale'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed words without stopwords; `put_object` and `putObject` give put, object."""
    return [stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in STOPWORDS]


@dataclass
class Bm25Index:
    """Documents are (key, weighted fields); a field's weight repeats its terms (a name counts more
    than a word deep in a description)."""

    k1: float = 1.2
    b: float = 0.75
    keys: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    postings: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    idf: dict[str, float] = field(default_factory=dict)
    average_length: float = 1.0

    @classmethod
    def build(cls, documents: Iterable[tuple[str, list[tuple[str, int]]]]) -> Bm25Index:
        index = cls()
        for key, fields in documents:
            counts: Counter[str] = Counter()
            for text, weight in fields:
                for term in terms(text):
                    counts[term] += weight
            doc = len(index.keys)
            index.keys.append(key)
            index.lengths.append(sum(counts.values()))
            for term, count in counts.items():
                index.postings.setdefault(term, []).append((doc, count))
        total = len(index.keys)
        index.average_length = (sum(index.lengths) / total) if total else 1.0
        index.idf = {
            term: math.log(1 + (total - len(docs) + 0.5) / (len(docs) + 0.5)) for term, docs in index.postings.items()
        }
        return index

    def search(self, query: str, limit: int, admit: Callable[[str], bool] | None = None) -> list[tuple[str, float]]:
        """The best `limit` keys for `query` (those `admit` accepts), best first, with their scores."""
        scores: dict[int, float] = {}
        matched: dict[int, int] = {}
        k1, b, average, lengths = self.k1, self.b, self.average_length, self.lengths
        wanted = set(terms(query))
        for term in wanted:
            docs = self.postings.get(term)
            if not docs:
                continue
            idf = self.idf[term]
            for doc, tf in docs:
                norm = k1 * (1 - b + b * lengths[doc] / average)
                scores[doc] = scores.get(doc, 0.0) + idf * tf * (k1 + 1) / (tf + norm)
                matched[doc] = matched.get(doc, 0) + 1
        # Coordination: a tool matching more of the query's words beats one repeating a single
        # common word (a short query's "file" is in hundreds of tool names).
        for doc, count in matched.items():
            scores[doc] *= count / len(wanted)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], self.keys[item[0]]))
        out: list[tuple[str, float]] = []
        for doc, score in ranked:
            key = self.keys[doc]
            if admit is None or admit(key):
                out.append((key, score))
                if len(out) == limit:
                    break
        return out
