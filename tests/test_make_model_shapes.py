"""`make-model random-qwen2.5-vl-3b`: Qwen2.5-VL-3B-Instruct's shapes over the local tokenizer, checked
on the meta device (no memory): the parameter count and the wiring of the special tokens."""

import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from metaspatial_cli.make_model import Kind
from stages.core.tiny_vlm import SPECIAL_TOKENS, qwen_config, train_tokenizer


def test_the_3b_shapes_are_the_public_models():
    tokenizer = train_tokenizer(0, 2048)
    config = qwen_config(tokenizer, "qwen2.5-vl-3b")
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    parameters = sum(p.numel() for p in model.parameters())
    assert 3.70e9 < parameters < 3.80e9  # Qwen2.5-VL-3B-Instruct: 3.75 B
    assert model.get_input_embeddings().weight.shape == (151936, 2048)
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied, as in the public model
    assert len(model.model.language_model.layers) == 36 and len(model.model.visual.blocks) == 32
    assert len(tokenizer) < 2048  # the local tokenizer uses the first rows of the real-size embedding
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>") < len(SPECIAL_TOKENS)
    assert config.text_config.eos_token_id == tokenizer.eos_token_id
    assert Kind("random-qwen2.5-vl-3b") is Kind.random_qwen2_5_vl_3b
