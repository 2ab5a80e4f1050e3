"""Vision-language model code shared by the stages that run a policy (rollout, update, judges).

One place decides how a model and its processor are loaded and how a row becomes chat messages,
so the tokens `update` trains on are exactly the tokens `rollout` sampled from:

- `load_model(path)`: any Hugging Face image-text-to-text model with a chat template, from a local
  directory or a hub name; a LoRA adapter directory (as `update` writes) loads onto its base.
- `load_processor(path)`: tokenizer (left padding) + the PIL image processor + the model's processor
  class. It never needs torchvision (whose CPU wheels are often missing or broken), and it gives
  the same pixels on every machine.
- `build_messages(prompt, image, history, system)`: the one chat a row stands for (turn 1: task + room
  image; later turns: task + previous answer, reward, feedback + the previous render), after the
  row's system message when it has one.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import UserError
from .paths import confined
from .turns import followup_text

ADAPTER_CONFIG = "adapter_config.json"


class PixelLimits(BaseModel):
    """Options of the stages that turn images into tokens (rollout, update): one image's size in pixels
    sets its number of image tokens, so update must use the limits rollout sampled with."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    min_pixels: int | None = Field(default=None, ge=1)
    """Qwen-VL image processors: scale smaller images up to this many pixels (default: the model's;
    the paper: 262144). Rollout and update must agree."""
    max_pixels: int | None = Field(default=None, ge=1)
    """Qwen-VL image processors: scale larger images down to this many pixels (default: the model's;
    the paper: 4194304). Rollout and update must agree."""

    def pixel_limits(self) -> dict[str, int]:
        """The limits that are set, as image-processor keyword arguments."""
        return {k: v for k, v in (("min_pixels", self.min_pixels), ("max_pixels", self.max_pixels)) if v}


def model_source(path: str | Path) -> tuple[str, Path | None]:
    """(base model, adapter directory or None). A hub name or a full model directory is its own base."""
    local = Path(path)
    if not (local / ADAPTER_CONFIG).is_file():
        return str(path), None
    try:
        base = json.loads((local / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (json.JSONDecodeError, KeyError) as err:
        raise UserError(f"{local / ADAPTER_CONFIG}: cannot read the base model name ({err})") from None
    if not base:
        raise UserError(f"{local / ADAPTER_CONFIG}: base_model_name_or_path is empty")
    # A relative base path is taken relative to the adapter directory when it exists there.
    if not Path(base).is_absolute() and (local / base).is_dir():
        base = str((local / base).resolve())
    return base, local


def _processor_dir(path: str | Path) -> str:
    base, adapter = model_source(path)
    if adapter is not None and (adapter / "tokenizer_config.json").is_file():
        return str(adapter)
    return base


def _without_video(processor_cls: Any) -> type:
    """The processor class with video support optional: its video processor needs torchvision, and
    the layout task only ever sends images. It saves (and so reloads) without one."""

    def check(self: Any, argument_name: str, argument: Any) -> Any:
        if argument is None and "video" in argument_name:
            return None
        return processor_cls.check_argument_for_proper_class(self, argument_name, argument)

    def attributes(cls: Any) -> list[str]:
        return [a for a in processor_cls.get_attributes() if "video" not in a]

    return type(processor_cls.__name__, (processor_cls,), {"check_argument_for_proper_class": check,
                                                           "get_attributes": classmethod(attributes)})


def load_processor(path: str | Path, flag: str = "--model", pixels: dict[str, int] | None = None):
    """The model's processor, built from its tokenizer and PIL image processor (left padding); for a
    text-only model, its tokenizer (which also applies the chat template and encodes text). `flag` is
    the option that named the model, for the error message when it cannot be loaded. `pixels`
    (PixelLimits.pixel_limits) overrides the image processor's size limits."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    source = _processor_dir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, padding_side="left")
    except OSError as err:  # not a model directory, or a hub name while offline
        raise UserError(f"{flag}: cannot load {path}: {err}") from None
    if tokenizer.chat_template is None:
        raise UserError(f"{flag}: {path} has no chat template; rollout needs a chat (instruct) model")
    model_type = AutoConfig.from_pretrained(model_source(path)[0]).model_type
    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    if not name:
        return tokenizer  # a text-only model: prompts without images work through the tokenizer alone
    image_processor = _image_processor(source, pixels or {}, path)
    import transformers

    cls = getattr(transformers, name)
    if "video_processor" not in inspect.signature(cls.__init__).parameters:
        return cls.from_pretrained(source, image_processor=image_processor, tokenizer=tokenizer)
    return _without_video(cls)(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                               chat_template=tokenizer.chat_template)


def _image_processor(source: str, pixels: dict[str, int], path: str | Path) -> Any:
    """The PIL image processor, with the pixel limits applied where the processor has them (Qwen-VL's
    size is {shortest_edge: min pixels, longest_edge: max pixels})."""
    from transformers import AutoImageProcessor

    if pixels.get("min_pixels", 0) > pixels.get("max_pixels", 1 << 62):
        raise UserError(f"--min-pixels ({pixels['min_pixels']}) is more than --max-pixels ({pixels['max_pixels']})")
    image_processor = AutoImageProcessor.from_pretrained(source, backend="pil", **pixels)
    if pixels and getattr(image_processor.size, "longest_edge", None) is None:
        raise UserError(f"--{next(iter(pixels)).replace('_', '-')}: the image processor of {path} "
                        f"({type(image_processor).__name__}) has no pixel limits; leave the option out")
    return image_processor


def load_model(path: str | Path, dtype: str = "auto", device: str | None = None, merge_adapter: bool = True,
               attn_implementation: str | None = None):
    """An image-text-to-text model (else a text-only causal LM) in eval mode. A LoRA adapter is
    applied to its base and merged by default, which makes sampling as fast as with a full model.
    `attn_implementation` (sdpa, flash_attention_2, eager) defaults to transformers' choice."""
    import torch
    from transformers import AutoModelForImageTextToText

    base, adapter = model_source(path)
    options: dict[str, Any] = {"dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
    if attn_implementation:
        options["attn_implementation"] = attn_implementation
    model: Any
    try:
        model = AutoModelForImageTextToText.from_pretrained(base, **options)
    except ValueError:  # not an image-text model: a text-only causal LM still takes text prompts
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(base, **options)
    except OSError as err:
        raise UserError(f"--model: cannot load {base}: {err}") from None
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge_adapter:
            model = model.merge_and_unload()
    if device:
        model = model.to(device)
    return model.eval()


def open_image(dataset_dir: Path | None, ref: Any):
    """A row's image as RGB PIL: `ref` is a path inside `dataset_dir` (refused if it leads outside),
    a path the caller vouches for (`dataset_dir` None) or a PIL image."""
    from PIL import Image

    if ref is None or isinstance(ref, Image.Image):
        return ref.convert("RGB") if ref is not None else None
    path = Path(ref) if dataset_dir is None else confined(dataset_dir, ref, f"{dataset_dir}, image")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read image ({err})") from None


def turn_image(image: Any, history: list[dict[str, Any]]) -> Any:
    """The image a turn shows: the render of the previous layout, else the row's own image."""
    if history and history[-1].get("image"):
        return history[-1]["image"]
    return image


def build_messages(prompt: str, image: Any, history: list[dict[str, Any]] | None = None,
                   system: str | None = None) -> list[dict[str, Any]]:
    """The chat for one row. `image` is whatever the caller uses for images (a relative path, a PIL
    image, None for text only); later turns show the previous render in its place. `history` is
    decoded (`stages.core.rows.history`). `system`: the row's system message (None: the chat
    template's default)."""
    history = history or []
    text = followup_text(prompt, history[-1]) if history else prompt
    shown = turn_image(image, history)
    content: list[dict[str, Any]] = [{"type": "image", "image": shown}] if shown is not None else []
    content.append({"type": "text", "text": text})
    user = {"role": "user", "content": content}
    return [{"role": "system", "content": [{"type": "text", "text": system}]}, user] if system else [user]


def message_images(messages: list[dict[str, Any]]) -> list[Any]:
    """The image payloads of a chat, in the order the template places their tokens."""
    return [part["image"] for m in messages if isinstance(m["content"], list)
            for part in m["content"] if part.get("type") == "image"]


def chat_text(processor: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt string (chat template applied, assistant turn opened), before image-token expansion."""
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_chats(processor: Any, chats: list[list[dict[str, Any]]]):
    """Batch-encode chats whose image payloads are PIL images: left-padded ids, pixels, grids."""
    texts = [chat_text(processor, m) for m in chats]
    images = [img for m in chats for img in message_images(m)]
    return processor(text=texts, **({"images": images} if images else {}), padding=True, return_tensors="pt")
