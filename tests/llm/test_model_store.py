"""First use of a GGUF model: one metadata parse, and the cached folder holds exactly the de-quantized weights."""

import gguf
import numpy as np
import pytest
import torch

from routing_gym.llm import model_store


def _small_gguf(path):
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_each_gguf_file_is_parsed_once_inside_the_context(tmp_path):
    first, second = _small_gguf(tmp_path / "a.gguf"), _small_gguf(tmp_path / "b.gguf")
    original = gguf.GGUFReader
    try:
        with model_store.parsed_once():
            reader = gguf.GGUFReader(first)
            assert gguf.GGUFReader(str(first)) is reader
            assert [t.name for t in reader.tensors] == ["token_embd.weight"]
            other = gguf.GGUFReader(second)
            assert other is not reader and gguf.GGUFReader(second) is other
        assert gguf.GGUFReader is original
        with model_store.parsed_once():  # the last parse is kept for the model load that follows
            assert gguf.GGUFReader(second) is other
        model_store.forget_parsed()
        with model_store.parsed_once():
            assert gguf.GGUFReader(second) is not other
    finally:
        model_store.forget_parsed()
    assert gguf.GGUFReader is original


@pytest.mark.slow
def test_the_cached_folder_holds_the_gguf_weights_bit_for_bit(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from routing_gym.llm.spec import BUILTIN_SPECS

    monkeypatch.setenv("ROUTING_GYM_CACHE", str(tmp_path))
    spec = BUILTIN_SPECS["smollm2-135m"]
    folder = model_store.materialize_gguf(spec, model_store.model_digest(spec))
    source = model_store.gguf_path(spec)
    reference = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name).state_dict()
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()
    assert sorted(loaded) == sorted(reference)
    for name, tensor in reference.items():
        assert torch.equal(loaded[name], tensor), name
    # SmolLM2 ties its output layer to the embeddings: stored once, tied again on loading.
    assert torch.equal(loaded["lm_head.weight"], loaded["model.embed_tokens.weight"])
