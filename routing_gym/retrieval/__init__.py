"""Dense sentence embeddings and FAISS retrieval."""

from routing_gym.retrieval.encoder import SentenceEncoder, default_encoder
from routing_gym.retrieval.retriever import (
    CorpusIndex,
    DenseRetriever,
    ParagraphIndex,
    RetrievedParagraph,
    context_paragraphs,
    corpus_paragraphs,
    retriever_for_example,
)

__all__ = [
    "CorpusIndex",
    "DenseRetriever",
    "ParagraphIndex",
    "RetrievedParagraph",
    "SentenceEncoder",
    "context_paragraphs",
    "corpus_paragraphs",
    "default_encoder",
    "retriever_for_example",
]
