"""Per-document work the script hands to joblib: counts over a shared vocabulary."""


def score(doc_id: int, corpus: list[str], vocabulary: frozenset[str]) -> tuple[int, int]:
    """How many words of document ``doc_id`` are in the vocabulary."""
    words = corpus[doc_id].split()
    return doc_id, sum(word in vocabulary for word in words)
