"""Models behind an OpenAI-compatible server (vLLM, llama.cpp's server, ...), through the ``openai`` client.

A server model is closed: its weights are not in this process, so it takes no per-query LoRA and
gives no differentiable token log-probs. What it offers:

- generation: one pool batch is sent as concurrent requests, at most ``concurrency`` in flight.
  A request answered with 429 or 5xx, or whose connection drops, is sent again up to
  ``max_retries`` times, after ``retry_backoff`` seconds doubled each time (at most
  ``retry_backoff_max``) or the server's ``Retry-After``; an error that survives the retries
  raises a ``BackendError`` naming the URL and the model, and the pool then writes nothing of
  that batch to its cache.
- tokens and cost: from each response's ``usage`` (token ids are not known here).
- the cache key: the served model name (plus ``revision``) and the exact request body.
- choice scoring: read from the completion log-probs of the next token (``top_logprobs``), one
  token at a time along each choice (see ``score_choices``); a server that returns no log-probs
  falls back to the generated text.

Prompts: ``api="completions"`` renders chat messages here with the chat template of
``chat_template`` (a tokenizer location) and sends the text, so prompts and response prefixes are
exact; ``api="chat"`` sends the messages and lets the server apply its template, and forces a
response prefix only where the server continues a final assistant message (vLLM's
``continue_final_message``, enabled by the option of that name).
"""

from __future__ import annotations

import math
import os
import random
import re
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Sequence

from routing_gym.cost import MAX_CALL_TOKENS
from routing_gym.errors import BackendError
from routing_gym.llm.backends.base import Backend, Capabilities, ChoiceScores, Completion
from routing_gym.llm.requests import GenerationRequest
from routing_gym.llm.server_config import ServerConfig
from routing_gym.llm.spec import ModelSpec

#: How many alternatives each scoring call asks for (vLLM's default ``--max-logprobs`` is 20).
TOP_LOGPROBS = 20
#: Tokens generated to read a choice from the text when the server gives no log-probs.
TEXT_FALLBACK_TOKENS = 8

#: The most tokens one request may report in ``usage``; more is a broken or hostile server.
MAX_USAGE_TOKENS = MAX_CALL_TOKENS
#: Log-probs above this are not log-probabilities (a little above 0 is rounding).
MAX_LOGPROB = 1e-4
# A dated snapshot of the model asked for ("gpt-4o" answered as "gpt-4o-2024-08-06").
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})")

#: The longest ``Retry-After`` (seconds) waited for; a longer one falls back to the backoff.
MAX_RETRY_AFTER = 120.0
# Backoff jitter from its own generator, so retries never move a seeded global ``random`` state.
_JITTER = random.Random()

# Chat-template tokenizers load once per process, keyed by their location.
_TEMPLATE_TOKENIZERS: dict[str, Any] = {}
_TEMPLATE_LOCK = threading.Lock()


def _template_tokenizer(location: str, model_name: str):
    """The tokenizer at ``location`` (gguf-package:, dir: or hub:), read only for its chat template."""
    with _TEMPLATE_LOCK:
        if location not in _TEMPLATE_TOKENIZERS:
            from transformers import AutoTokenizer

            from routing_gym.llm import model_store

            kind, value = location.split(":", 1)
            try:
                if kind == "gguf-package":
                    path = model_store.gguf_path(ModelSpec(name=model_name, location=location))
                    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
                else:
                    tokenizer = AutoTokenizer.from_pretrained(value)
            except OSError as exc:
                raise BackendError(
                    f"Model {model_name!r}: cannot load the chat template from {location}: {exc}"
                ) from exc
            if not tokenizer.chat_template:
                raise BackendError(
                    f"Model {model_name!r}: the tokenizer at {location} has no chat template."
                )
            _TEMPLATE_TOKENIZERS[location] = tokenizer
        return _TEMPLATE_TOKENIZERS[location]


class ServerStatusError(BackendError):
    """The server answered a request with an HTTP error (after the client's retries)."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


class OpenAIBackend(Backend):
    """A model served behind an OpenAI-compatible HTTP API (``backend="openai"``, ``location="server:NAME"``)."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.config = ServerConfig.from_spec(spec.name, spec.location_value, spec.options)
        self._client = None
        self._client_pid: int | None = None
        self._checked = False
        self._logprobs_refused = False
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # An HTTP client holds sockets and locks: rebuilt on first use after unpickling.
        return {
            **self.__dict__,
            "_client": None,
            "_client_pid": None,
            "_checked": False,
            "_lock": None,
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- identity and capabilities -----------------------------------------------------------
    @property
    def model_id(self) -> str:
        revision = f"#{self.config.revision}" if self.config.revision else ""
        return f"{self.spec.name}@server:{self.config.model}{revision}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(white_box=False, choice_scoring="logprobs-or-text")

    @property
    def where(self) -> str:
        """``'x' (served as 'y' at URL)``: how errors name this model."""
        return f"{self.spec.name!r} (served as {self.config.model!r} at {self.config.base_url})"

    # -- the client ----------------------------------------------------------------------------
    def _api_key(self) -> str:
        name = self.config.api_key_env
        if name is None:
            return "no-key"  # local servers ignore it, but the client insists on one
        key = os.environ.get(name)
        if not key:
            raise BackendError(
                f"The API key of model {self.where} is read from ${name}, which is not set."
            )
        return key

    @property
    def client(self):
        """The ``openai`` client, made once per process (a forked worker makes its own)."""
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                try:
                    import openai
                except ImportError as exc:
                    raise BackendError(
                        f"Model {self.where} needs the 'openai' package: pip install 'routing_gym[server]'."
                    ) from exc
                self._client = openai.OpenAI(
                    base_url=self.config.base_url,
                    api_key=self._api_key(),
                    timeout=self.config.timeout,
                    max_retries=0,  # retried in _call, where the backoff follows the spec
                )
                self._client_pid = os.getpid()
                self._checked = False
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._client_pid == os.getpid():
            client.close()

    def _retry_delay(self, retry: int, error: Exception) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): the server's Retry-After, else the backoff."""
        response = getattr(error, "response", None)
        try:
            retry_after = float(response.headers["retry-after"])
        except (AttributeError, KeyError, TypeError, ValueError):
            retry_after = math.nan
        if 0.0 <= retry_after <= MAX_RETRY_AFTER:
            return retry_after
        backoff = min(self.config.retry_backoff * 2.0**retry, self.config.retry_backoff_max)
        return backoff * (1.0 - 0.25 * _JITTER.random())  # spreads out concurrent retries

    def _call(self, what: str, function, **kwargs):
        """One API call, retried on 429, 5xx and dropped connections; a final error names the URL and model.

        The retries are here rather than in the ``openai`` client (built with ``max_retries=0``)
        because the client's backoff delays are fixed; here they come from the spec's options.
        """
        import openai

        retries = self.config.max_retries
        for retry in range(retries + 1):
            try:
                return function(**kwargs)
            except openai.APIStatusError as exc:
                retryable = exc.status_code == 429 or exc.status_code >= 500
                if retryable and retry < retries:
                    time.sleep(self._retry_delay(retry, exc))
                    continue
                if exc.status_code == 404:
                    raise BackendError(
                        f"The server does not serve model {self.where}: {what} answered 404 ({exc.message})."
                    ) from exc
                tried = f" (after {retries} retries)" if retryable else ""
                raise ServerStatusError(
                    f"{what} for model {self.where} failed with HTTP {exc.status_code}{tried}: {exc.message}",
                    exc.status_code,
                ) from exc
            except openai.APIConnectionError as exc:
                if retry < retries:
                    time.sleep(self._retry_delay(retry, exc))
                    continue
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                raise BackendError(
                    f"The server of model {self.where} is not reachable "
                    f"({what}: {type(cause).__name__}: {cause}; after {retries} retries)."
                ) from exc
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # the client could not parse the answer (e.g. invalid JSON with status 200)
                raise self._malformed(what, f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _malformed(self, what: str, problem: str) -> BackendError:
        """The error for an answer that is not a valid response; nothing of it is cached."""
        problem = " ".join(str(problem).split())[:300]
        return BackendError(f"{what} for model {self.where}: not a valid response: {problem}")

    def _valid(self, response, what: str):
        """``response`` if it is a completion of the model asked for with one choice or more;
        else a BackendError naming the URL and the model."""
        if isinstance(response, (str, bytes)):
            text = response if isinstance(response, str) else response.decode("utf-8", "replace")
            raise self._malformed(what, f"the body is not JSON but {text[:80]!r}")
        error = getattr(response, "error", None)
        if error:
            message = error.get("message", error) if isinstance(error, dict) else error
            raise self._malformed(what, f"the server answered with an error: {message}")
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices or choices[0] is None:
            raise self._malformed(
                what, f"'choices' is {choices!r}, not a list of one choice or more"
            )
        echoed, asked = getattr(response, "model", None), self.config.model
        if not isinstance(echoed, str) or (
            echoed != asked
            and not (echoed.startswith(asked) and _SNAPSHOT.fullmatch(echoed[len(asked) :]))
        ):
            raise self._malformed(what, f"it answers as model {echoed!r}, not {asked!r}")
        return response

    def check_served(self) -> None:
        """Ask the server which models it serves (once per process); raise naming URL and model if not ours."""
        client = self.client
        if self._checked:
            return
        listing = self._call("GET /models", client.models.list)
        try:
            served = [m.id for m in listing.data]
        except (AttributeError, TypeError) as exc:
            raise self._malformed("GET /models", f"no list of models ({exc})") from exc
        if self.config.model not in served:
            raise BackendError(f"The server does not serve model {self.where}; it serves {served}.")
        self._checked = True

    # -- requests --------------------------------------------------------------------------------
    def _template(self):
        if self.config.chat_template is None:
            raise BackendError(
                f"Model {self.where} uses api='completions', which renders chat messages here: set "
                "options['chat_template'] to a tokenizer location (e.g. 'hub:ORG/NAME'), or use api='chat'."
            )
        return _template_tokenizer(self.config.chat_template, self.spec.name)

    def _uses_chat(self, request: GenerationRequest) -> bool:
        return request.messages is not None and self.config.api == "chat"

    def prompt_text(self, request: GenerationRequest, forced: str = "") -> str:
        """The exact text sent to the completions endpoint: the prompt, the response prefix and ``forced``."""
        if request.prompt is not None:
            return request.prompt + request.response_prefix + forced
        text = self._template().apply_chat_template(
            list(request.messages), add_generation_prompt=True, tokenize=False
        )
        return text + request.response_prefix + forced

    def _chat_messages(
        self, request: GenerationRequest, forced: str = ""
    ) -> tuple[list[dict], dict[str, Any]]:
        """Chat messages (plus extra body fields) that end where the reply continues."""
        messages = [dict(m) for m in request.messages]
        prefix = request.response_prefix + forced
        if not prefix:
            return messages, {}
        if not self.config.continue_final_message:
            raise BackendError(
                f"Model {self.where}: api='chat' cannot force the response prefix {prefix!r}; use api='completions' "
                "with options['chat_template'], or set continue_final_message=true if the server (e.g. vLLM) "
                "continues a final assistant message."
            )
        messages.append({"role": "assistant", "content": prefix})
        return messages, {"continue_final_message": True, "add_generation_prompt": False}

    def _body(
        self, request: GenerationRequest, forced: str = "", **decoding
    ) -> tuple[str, dict[str, Any]]:
        """(endpoint, JSON body) of the request; the body is exactly what is sent."""
        params = request.decoding_params()
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": params["max_new_tokens"],
            "temperature": params["temperature"],
            "top_p": params["top_p"],
            "seed": params["seed"],
        }
        if params["stop"]:
            body["stop"] = params["stop"]
        body.update(decoding)
        extra = dict(self.config.extra_body)
        if self._uses_chat(request):
            body["messages"], more = self._chat_messages(request, forced)
            return "chat", {**body, **extra, **more}
        body["prompt"] = self.prompt_text(request, forced)
        return "completions", {**body, **extra}

    def _send(self, endpoint: str, body: dict[str, Any]):
        known = {k: v for k, v in body.items() if k in _CLIENT_ARGS[endpoint]}
        extra = {k: v for k, v in body.items() if k not in _CLIENT_ARGS[endpoint]}
        create = (
            self.client.chat.completions.create
            if endpoint == "chat"
            else self.client.completions.create
        )
        return self._call(
            _endpoint_name(endpoint),
            create,
            **known,
            extra_body=extra or None,
        )

    def _usage(self, response, what: str) -> tuple[int, int]:
        """(prompt, completion) tokens of ``usage``: both present, integers in [0, MAX_USAGE_TOKENS]."""
        usage = getattr(response, "usage", None)
        if usage is None:
            raise BackendError(
                f"{what} for model {self.where}: the response has no 'usage', so the call cannot "
                "be priced."
            )
        counts = []
        for field in ("prompt_tokens", "completion_tokens"):
            value = getattr(usage, field, None)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 0 <= value <= MAX_USAGE_TOKENS
            ):
                raise self._malformed(
                    what,
                    f"usage.{field} is {value!r}, not a token count in [0, {MAX_USAGE_TOKENS}]",
                )
            counts.append(value)
        return counts[0], counts[1]

    def _logprob(self, value, what: str) -> float:
        """A log-prob the server sent, checked: finite and at most 0 (up to rounding)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._malformed(what, f"a log-prob is {value!r}, not a number")
        if not math.isfinite(value) or value > MAX_LOGPROB:
            raise self._malformed(what, f"a log-prob is {value!r}, not a finite number <= 0")
        return float(value)

    # -- generation -----------------------------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> None:
        return None  # the server tokenizes; counts come back in ``usage``

    def request_key(self, request: GenerationRequest) -> dict[str, Any]:
        endpoint, body = self._body(request)
        return {"endpoint": endpoint, "body": body}

    def _complete(self, request: GenerationRequest) -> Completion:
        endpoint, body = self._body(request)
        what = _endpoint_name(endpoint)
        response = self._valid(self._send(endpoint, body), what)
        choice = response.choices[0]
        text = self._text(choice, endpoint, what)
        prompt_tokens, completion_tokens = self._usage(response, what)
        return Completion(
            text=text or "",
            completion_ids=[],
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def _text(self, choice, endpoint: str, what: str) -> str:
        """The generated text of a choice ("" for none); anything but a string is malformed."""
        try:
            text = choice.message.content if endpoint == "chat" else choice.text
        except AttributeError as exc:
            raise self._malformed(what, f"the choice has no text ({exc})") from exc
        if text is not None and not isinstance(text, str):
            raise self._malformed(what, f"the generated text is {text!r}, not a string")
        return text or ""

    def _concurrently(self, function, items: Sequence) -> list:
        """``function`` over ``items`` on at most ``concurrency`` threads, in order; the first error raises."""
        if len(items) <= 1 or self.config.concurrency == 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(items))) as executor:
            futures = [executor.submit(function, item) for item in items]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                for future in futures:
                    future.cancel()  # requests not yet sent stay unsent
                raise failed[0].exception()
            return [f.result() for f in futures]

    def generate(
        self, requests: Sequence[GenerationRequest], prompt_ids: Sequence[list[int] | None]
    ) -> list[Completion]:
        """Send the requests concurrently (at most ``concurrency`` at once); all succeed or this raises."""
        self.check_served()
        return self._concurrently(self._complete, list(requests))

    # -- scoring ----------------------------------------------------------------------------------
    def _next_token_logprobs(
        self, request: GenerationRequest, forced: str
    ) -> tuple[dict[str, float] | None, int, int]:
        """The server's top log-probs of the token after the prompt + ``forced`` (None if it gives none)."""
        endpoint, body = self._body(
            request, forced, max_tokens=1, temperature=0.0, top_p=1.0, seed=0, stop=None
        )
        if endpoint == "chat":
            body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        else:
            body.update(logprobs=TOP_LOGPROBS)
        body = {k: v for k, v in body.items() if v is not None}
        what = _endpoint_name(endpoint)
        response = self._valid(self._send(endpoint, body), what)
        usage = self._usage(response, what)
        logprobs = getattr(response.choices[0], "logprobs", None)
        try:
            if endpoint == "chat":
                content = getattr(logprobs, "content", None) if logprobs is not None else None
                if not content:
                    return None, *usage
                top = {alt.token: alt.logprob for alt in content[0].top_logprobs or []}
            else:
                if (
                    logprobs is None
                    or not logprobs.top_logprobs
                    or logprobs.top_logprobs[0] is None
                ):
                    return None, *usage
                top = dict(logprobs.top_logprobs[0].items())
        except (AttributeError, TypeError, IndexError) as exc:
            raise self._malformed(
                what, f"malformed log-probs ({type(exc).__name__}: {exc})"
            ) from exc
        return {str(token): self._logprob(lp, what) for token, lp in top.items()}, *usage

    def score_choices(
        self, request: GenerationRequest, prompt_ids: list[int] | None, choices: Sequence[str]
    ) -> ChoiceScores:
        """Each choice's log-probability, read token by token from the server's top log-probs.

        At each step the server returns its ``TOP_LOGPROBS`` likeliest next tokens after the prompt
        plus the part of the choice read so far; the longest of them that continues the choice is
        taken and its log-prob added. A choice that leaves the top list scores ``-inf``. Steps
        shared by several choices (e.g. the first step of answer letters) are asked once.
        Where the server returns no log-probs or answers the log-prob request with an HTTP error
        (then remembered for this process), or with ``choice_logprobs=False``, the choice the
        generated text starts with scores 0.0 and the others ``-inf`` (source ``"text"``).
        """
        self.check_served()
        usage = [0, 0]
        asked: dict[str, dict[str, float] | None] = {}

        def top_after(forced: str) -> dict[str, float] | None:
            if forced not in asked:
                asked[forced], p, c = self._next_token_logprobs(request, forced)
                usage[0], usage[1] = usage[0] + p, usage[1] + c
            return asked[forced]

        if self.config.choice_logprobs and not self._logprobs_refused:
            try:
                scores = [self._chained_logprob(choice, top_after) for choice in choices]
            except ServerStatusError:
                # The server refuses log-probs (e.g. llama.cpp without logits_all); the text
                # request below still fails loudly if the server itself is broken.
                self._logprobs_refused = True
                scores = [None]
            if all(score is not None for score in scores):
                return ChoiceScores(scores, "logprobs", usage[0], usage[1])
        return self._score_from_text(request, choices, usage[0], usage[1])

    def score_choices_batch(
        self,
        requests: Sequence[GenerationRequest],
        prompt_ids: Sequence[list[int] | None],
        choices: Sequence[Sequence[str]],
    ) -> list[ChoiceScores]:
        """``score_choices`` for several requests, sent concurrently (at most ``concurrency`` at once)."""
        self.check_served()
        jobs = list(zip(requests, prompt_ids, choices))
        return self._concurrently(lambda job: self.score_choices(*job), jobs)

    @staticmethod
    def _chained_logprob(choice: str, top_after) -> float | None:
        """log P(choice) along the longest listed tokens; -inf if it leaves the lists, None without log-probs."""
        total, offset = 0.0, 0
        while offset < len(choice):
            top = top_after(choice[:offset])
            if top is None:
                return None
            steps = [token for token in top if token and choice.startswith(token, offset)]
            if not steps:
                return -math.inf
            step = max(steps, key=len)
            total += top[step]
            offset += len(step)
        return total

    def _score_from_text(
        self,
        request: GenerationRequest,
        choices: Sequence[str],
        prompt_tokens: int,
        completion_tokens: int,
    ) -> ChoiceScores:
        endpoint, body = self._body(
            request, max_tokens=TEXT_FALLBACK_TOKENS, temperature=0.0, top_p=1.0, seed=0, stop=None
        )
        body = {k: v for k, v in body.items() if v is not None}
        what = _endpoint_name(endpoint)
        response = self._valid(self._send(endpoint, body), what)
        p, c = self._usage(response, what)
        text = self._text(response.choices[0], endpoint, what)
        said = text.strip().lower()
        matches = [
            i
            for i, option in enumerate(choices)
            if option.strip() and said.startswith(option.strip().lower())
        ]
        best = max(matches, key=lambda i: len(choices[i].strip()), default=None)
        logprobs = [0.0 if i == best else -math.inf for i in range(len(choices))]
        return ChoiceScores(logprobs, "text", prompt_tokens + p, completion_tokens + c)


# The keyword arguments the ``openai`` client's create() takes; anything else goes in ``extra_body``.
_COMMON_ARGS = {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "logprobs"}
_CLIENT_ARGS = {
    "completions": _COMMON_ARGS | {"prompt", "echo"},
    "chat": _COMMON_ARGS | {"messages", "top_logprobs"},
}


def _endpoint_name(endpoint: str) -> str:
    """How errors name a request: ``POST /completions`` or ``POST /chat/completions``."""
    return f"POST /{'chat/' if endpoint == 'chat' else ''}completions"
