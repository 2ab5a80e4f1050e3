"""A tiny random Qwen2.5-VL, built offline in seconds, so tests and the quickstart need no model hub
(and the same with Qwen2.5-VL-3B's shapes, for GPU memory and speed checks: examples/gpu/).

The model is real (`Qwen2_5_VLForConditionalGeneration`, vision tower included) but small
(~1.6 M parameters) and untrained. Its tokenizer is a byte-level BPE trained here on a
deterministic synthetic corpus of room-layout text, wrapped in the real `Qwen2Tokenizer` with the
Qwen special tokens, so chat templating, image-token expansion, xgrammar and vLLM treat it exactly
like a full-size Qwen2.5-VL. The same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

# Qwen2.5-VL's special tokens, in Qwen's order; they get ids 0.. in the tiny vocabulary.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# ChatML with Qwen-VL's image and video markers (the structure of Qwen2.5-VL's own template).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_WORDS = (
    "the", "a", "an", "of", "to", "in", "on", "at", "by", "for", "with", "and", "or", "is", "are", "be",
    "place", "put", "room", "wall", "floor", "ceiling", "north", "south", "east", "west", "middle",
    "corner", "left", "right", "front", "behind", "under", "above", "near", "next", "object", "objects",
    "layout", "furniture", "sofa", "chair", "table", "desk", "bed", "lamp", "shelf", "cabinet", "rug",
    "plant", "tv", "stand", "bench", "treadmill", "wardrobe", "dresser", "nightstand", "bookshelf",
    "armchair", "mirror", "window", "door", "size", "length", "width", "height", "metres", "centre",
    "position", "rotation", "facing", "style", "material", "wood", "metal", "glass", "fabric", "modern",
    "minimal", "classic", "think", "answer", "because", "so", "that", "it", "fits", "overlap", "collide",
    "inside", "outside", "keep", "space", "walk", "path", "light", "reward", "feedback", "previous",
    "improve", "move",
)
_OBJECTS = ("sofa", "chair", "table", "desk", "bed", "lamp", "shelf", "cabinet", "rug", "plant", "tv_stand",
            "bench", "wardrobe", "dresser", "nightstand", "bookshelf", "armchair", "mirror")


def _scene_object(rng: random.Random) -> dict:
    """An IDesign-style object, as prompts list them."""
    walls = ("south_wall", "north_wall", "east_wall", "west_wall", "middle of the room")
    return {"new_object_id": f"{rng.choice(_OBJECTS)}_{rng.randint(1, 4)}", "style": rng.choice(_WORDS).capitalize(),
            "material": rng.choice(("Wood", "Metal", "Glass", "Fabric", "Leather", "Oak", "Walnut", "Plastic")),
            "size_in_meters": {"length": round(rng.uniform(0.2, 3), 2), "width": round(rng.uniform(0.2, 2), 2),
                               "height": round(rng.uniform(0.1, 2.5), 2)},
            "is_on_the_floor": rng.random() < 0.8, "facing": rng.choice(walls),
            "placement": {"room_layout_elements": [{"layout_element_id": rng.choice(walls),
                                                    "preposition": rng.choice(("on", "in the corner"))}],
                          "objects_in_room": [{"object_id": f"{rng.choice(_OBJECTS)}_1", "is_adjacent": True,
                                               "preposition": rng.choice(("on", "left of", "right of", "in front",
                                                                          "behind", "under", "above"))}]},
            "rotation": {"z_angle": rng.choice((0.0, 90.0, 180.0, 270.0))}}


def synthetic_corpus(seed: int, lines: int = 3000) -> list[str]:
    """Deterministic text in the shape the model will see: prose, object ids, layout JSON, tags."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        kind = rng.random()
        if kind < 0.3:
            out.append(json.dumps(_scene_object(rng)))
        elif kind < 0.55:
            out.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 20))).capitalize() + ".")
        elif kind < 0.85:
            items = [{"new_object_id": f"{rng.choice(_OBJECTS)}_{rng.randint(1, 4)}",
                      "x": round(rng.uniform(0, 9), rng.randint(1, 3)), "y": round(rng.uniform(0, 9), 2),
                      "z": round(rng.uniform(0, 3), 2)} for _ in range(rng.randint(1, 4))]
            out.append(f"<answer>{json.dumps(items)}</answer>")
        else:
            out.append(f"<think>{' '.join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12)))}</think>")
    return out


def train_tokenizer(seed: int, vocab_size: int):
    """A Qwen2-style byte-level BPE trained on the synthetic corpus, as a `Qwen2Tokenizer`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(synthetic_corpus(seed), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges: Any = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    # The fixed Qwen roles: eos ends a chat turn, pad is <|endoftext|>, prompts are left-padded
    # (batched Qwen2.5-VL rope indices are only right with left padding).
    return Qwen2Tokenizer(vocab=state["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                          extra_special_tokens=SPECIAL_TOKENS[3:], padding_side="left",
                          chat_template=CHAT_TEMPLATE, model_max_length=8192)


TINY_TEXT = {"vocab_size": None, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 8192,
             "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 6, 6]},
             "tie_word_embeddings": False}
"""A 2-layer text tower (vocab_size None: the tokenizer's own size)."""
TINY_VISION = {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2, "patch_size": 14,
               "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 128, "window_size": 56,
               "fullatt_block_indexes": [1]}
QWEN2_5_VL_3B_TEXT = {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                      "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000,
                      "rms_norm_eps": 1e-6, "hidden_act": "silu",
                      "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                      "tie_word_embeddings": True}
"""Qwen2.5-VL-3B-Instruct's text tower, from its public config.json (3.75 B parameters with the vision tower)."""
QWEN2_5_VL_3B_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
                        "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 2048, "window_size": 112,
                        "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu"}
SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "tiny": (TINY_TEXT, TINY_VISION), "qwen2.5-vl-3b": (QWEN2_5_VL_3B_TEXT, QWEN2_5_VL_3B_VISION)}


def qwen_config(tokenizer, shapes: str = "tiny"):
    """A Qwen2.5-VL config of the given shapes wired to the tokenizer's special-token ids. With the 3B
    shapes the embedding has the real vocabulary's 151,936 rows, of which the local tokenizer uses the
    first few hundred (the rest are never looked up), so memory and compute are the real model's."""
    from transformers import Qwen2_5_VLConfig

    text, vision = SHAPES[shapes]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = {**text, "vocab_size": text["vocab_size"] or len(tokenizer), "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                            video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                            vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=text["tie_word_embeddings"])


def build_tiny_vlm(out_dir: Path, seed: int = 0, vocab_size: int = 2048, max_image_pixels: int = 28 * 28 * 64,
                   shapes: str = "tiny") -> Path:
    """Write a loadable random Qwen2.5-VL (model, tokenizer, image processor) to `out_dir`.

    `vocab_size` is an upper bound of the tokenizer (BPE stops when the corpus has no more merges;
    ~850 tokens). `max_image_pixels` caps image size (28*28*64 gives at most 64 image tokens) to keep
    tests fast. `shapes="qwen2.5-vl-3b"` builds Qwen2.5-VL-3B's shapes instead (random bfloat16
    weights, 7.5 GB, initialised on the GPU when there is one) with Qwen's own image limits.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(seed, vocab_size)
    config = qwen_config(tokenizer, shapes)
    torch.manual_seed(seed)
    if shapes == "tiny":
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    else:
        max_image_pixels = 12845056  # Qwen2.5-VL's preprocessor_config.json
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id, eos_token_id=[tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 28 * 28 * 4, "longest_edge": max_image_pixels})
    image_processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_llava(out_dir: Path, seed: int = 0, vocab_size: int = 2048, image_size: int = 56) -> Path:
    """A tiny random LLaVA (CLIP vision tower + Qwen2 text tower) sharing the tiny Qwen tokenizer.

    A second architecture, so model-agnostic code is tested on more than Qwen2.5-VL; its image
    pipeline (CLIP, PIL) also runs where Qwen2-VL's needs torchvision (vLLM's CPU build).
    """
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        GenerationConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(seed, vocab_size)
    image_token = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                       bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=14, projection_dim=64)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id,
                                               do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    model.save_pretrained(out_dir)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                            crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               image_token="<|image_pad|>", num_additional_image_tokens=1)
    processor.save_pretrained(out_dir)
    return out_dir
