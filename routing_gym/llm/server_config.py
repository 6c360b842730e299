"""Settings of a model behind an OpenAI-compatible server (``backend="openai"``), checked up front.

A server model's spec reads ``location="server:SERVED_NAME"`` (the name the server knows it by)
and carries the connection settings in ``options``; see ``ServerConfig`` for each key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

APIS = ("chat", "completions")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEMPLATE_KINDS = ("gguf-package", "dir", "hub")


@dataclass(frozen=True)
class ServerConfig:
    """Connection and request settings of one server model (the ``options`` of its spec).

    Keys:
        base_url: the server's OpenAI API root, e.g. ``http://127.0.0.1:8000/v1`` (required).
        api_key_env: the NAME of the environment variable holding the API key (never the key);
            unset means no key (local servers).
        timeout: seconds to wait for one response (default 120).
        concurrency: the most requests in flight at once for one pool call (default 4).
        max_retries: how many times a request that got a 429, a 5xx or a dropped connection is
            sent again before the call fails (default 3; 0 = never).
        retry_backoff: seconds before the first retry, doubled before each next one
            (default 0.5); a ``Retry-After`` header of at most 120 s is waited instead.
        retry_backoff_max: the longest backoff wait in seconds (default 8).
        api: ``"chat"`` (the server applies its chat template; default) or ``"completions"``
            (chat messages are rendered here with ``chat_template``, so prompts are exact and a
            response prefix is forced exactly).
        chat_template: where to read the tokenizer whose chat template renders messages for
            ``api="completions"``: a ``gguf-package:``, ``dir:`` or ``hub:`` location.
        continue_final_message: the server continues a final assistant message (vLLM's
            extension); needed for a response prefix with ``api="chat"``.
        choice_logprobs: read choice scores from completion log-probs (default True); False
            scores from the generated text (see ``OpenAIBackend.score_choices``).
        extra_body: extra JSON fields sent with every request (and part of the cache key).
        revision: a label for the served weights; part of the cache key, so change it when
            the server starts serving other weights under the same name.
    """

    model: str
    base_url: str
    api_key_env: str | None = None
    timeout: float = 120.0
    concurrency: int = 4
    max_retries: int = 3
    retry_backoff: float = 0.5
    retry_backoff_max: float = 8.0
    api: str = "chat"
    chat_template: str | None = None
    continue_final_message: bool = False
    choice_logprobs: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    revision: str = ""

    @classmethod
    def from_spec(cls, name: str, model: str, options: Mapping[str, Any]) -> "ServerConfig":
        """Validate a server spec's options; a ValueError names the bad key."""

        def bad(key: str, wanted: str) -> ValueError:
            return ValueError(
                f"ModelSpec {name!r}: option {key!r} must be {wanted}, got {options[key]!r}."
            )

        known = set(cls.__dataclass_fields__) - {"model"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(
                f"ModelSpec {name!r}: unknown server options {sorted(unknown)}; known: {sorted(known)}."
            )
        if not model:
            raise ValueError(
                f"ModelSpec {name!r}: location must be 'server:SERVED_MODEL_NAME', got an empty name."
            )
        if "base_url" not in options:
            raise ValueError(
                f"ModelSpec {name!r}: a server model needs options['base_url'] (e.g. http://127.0.0.1:8000/v1)."
            )
        values = dict(options)
        url = values["base_url"]
        if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
            raise bad("base_url", "an http:// or https:// URL")
        values["base_url"] = url.rstrip("/")
        key_env = values.get("api_key_env")
        if key_env is not None and not (isinstance(key_env, str) and _ENV_NAME.fullmatch(key_env)):
            raise bad("api_key_env", "the name of an environment variable (not the key itself)")
        for key, positive in (
            ("timeout", True),
            ("retry_backoff", False),
            ("retry_backoff_max", False),
        ):
            if key in values:
                seconds = values[key]
                if (
                    isinstance(seconds, bool)
                    or not isinstance(seconds, (int, float))
                    or not math.isfinite(seconds)
                    or seconds < 0
                    or (positive and seconds == 0)
                ):
                    raise bad(key, f"a number of seconds {'>' if positive else '>='} 0")
                values[key] = float(seconds)
        backoff = values.get("retry_backoff", cls.retry_backoff)
        if values.get("retry_backoff_max", cls.retry_backoff_max) < backoff:
            raise ValueError(
                f"ModelSpec {name!r}: option 'retry_backoff_max' must be >= retry_backoff ({backoff}), "
                f"got {values.get('retry_backoff_max', cls.retry_backoff_max)!r}."
            )
        for key, low in (("concurrency", 1), ("max_retries", 0)):
            if key in values and (
                isinstance(values[key], bool)
                or not isinstance(values[key], int)
                or values[key] < low
            ):
                raise bad(key, f"an int >= {low}")
        if values.get("api", "chat") not in APIS:
            raise bad("api", f"one of {APIS}")
        template = values.get("chat_template")
        if template is not None and not (
            isinstance(template, str)
            and template.split(":", 1)[0] in _TEMPLATE_KINDS
            and ":" in template
        ):
            raise bad(
                "chat_template",
                f"a tokenizer location starting with one of {[k + ':' for k in _TEMPLATE_KINDS]}",
            )
        for key in ("continue_final_message", "choice_logprobs"):
            if key in values and not isinstance(values[key], bool):
                raise bad(key, "true or false")
        if not isinstance(values.get("extra_body", {}), Mapping):
            raise bad("extra_body", "a mapping of JSON fields")
        if not isinstance(values.get("revision", ""), str):
            raise bad("revision", "a string")
        return cls(model=model, **values)
