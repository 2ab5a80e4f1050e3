"""Turn checked groups into what the trainer consumes: token ids per group and a prompt dataset.

The prompt of a group is rebuilt with the same message builder `rollout` used (`vlm.build_messages`),
so the prompt tokens here are the tokens the completions were sampled after. The trainer's dataset
has one row per group: the chat with image placeholders, and the images' file paths (the
`datasets` Image feature opens them lazily, batch by batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.core import vlm
from stages.core.errors import UserError

from .groups import Group, Sample
from .trl_bridge import StoredGroup, tag_prompt

SHOWN = 5


@dataclass
class Prepared:
    """Groups ready for training, and what was dropped on the way."""

    groups: list[Group]
    stored: dict[str, StoredGroup]
    too_long: list[str]
    longest: int


def _image_path(input_dir: Path, ref: Any) -> str:
    path = Path(ref) if Path(ref).is_absolute() else Path(input_dir) / ref
    if not path.is_file():
        raise UserError(f"{input_dir}: image {ref} not found (expected at {path})")
    return str(path)


def group_chat(group: Group, input_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The group's chat with image placeholders, and the image files that fill them, in order."""
    messages = vlm.build_messages(group.prompt, group.image, vlm.parse_history(group.history))
    paths = [_image_path(input_dir, ref) for ref in vlm.message_images(messages)]
    stripped = [{**m, "content": [{"type": "image"} if part.get("type") == "image" else part
                                  for part in m["content"]]} if isinstance(m["content"], list) else m
                for m in messages]
    return stripped, paths


def _prompt_ids(processor: Any, messages: list[dict[str, Any]], paths: list[str], input_dir: Path) -> list[int]:
    """Prompt tokens exactly as the processor expands them (image placeholders become image tokens)."""
    images = [vlm.open_image(input_dir, p) for p in paths]
    filled, k = [], 0
    for m in messages:
        if isinstance(m["content"], list):
            parts = []
            for part in m["content"]:
                if part.get("type") == "image":
                    part, k = {"type": "image", "image": images[k]}, k + 1
                parts.append(part)
            m = {**m, "content": parts}
        filled.append(m)
    encoded = processor(text=[vlm.chat_text(processor, filled)], images=images or None)
    return [int(t) for t in encoded["input_ids"][0]]


def _completion_ids(sample: Sample, tokenizer: Any) -> list[int]:
    """The sampled tokens; for datasets without them, the response text tokenized, ended by EOS."""
    if sample.token_ids is not None:
        return sample.token_ids
    return list(tokenizer(sample.response, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]


def encode_groups(groups: list[Group], processor: Any, input_dir: Path, max_length: int,
                  skip_too_long: bool) -> Prepared:
    """Tokenize every group once, checking lengths against the model's context before training."""
    tokenizer = processor.tokenizer
    stored: dict[str, StoredGroup] = {}
    kept, too_long, longest = [], [], 0
    for group in groups:
        messages, paths = group_chat(group, input_dir)
        prompt_ids = _prompt_ids(processor, messages, paths, input_dir)
        completions = [_completion_ids(s, tokenizer) for s in group.samples]
        length = len(prompt_ids) + max(len(c) for c in completions)
        if length > max_length:
            too_long.append(group.group_id)
            continue
        longest = max(longest, length)
        kept.append(group)
        stored[group.group_id] = StoredGroup(prompt_ids, completions, group.rewards)
    if too_long and not skip_too_long:
        shown = ", ".join(too_long[:SHOWN]) + (", ..." if len(too_long) > SHOWN else "")
        raise UserError(f"{input_dir}: {len(too_long)} of {len(groups)} group(s) have prompt + completion longer "
                        f"than {max_length} tokens (the model's context or --max-length): {shown}. "
                        "Pass --skip-too-long to train without them")
    if not kept:
        raise UserError(f"{input_dir}: no group fits in {max_length} tokens; nothing to train on")
    return Prepared(kept, stored, too_long, longest)


def train_dataset(groups: list[Group], input_dir: Path) -> Any:
    """The trainer's dataset: one row per group, the chat tagged with its group id, plus its images."""
    from datasets import Dataset, Image, List, disable_progress_bars

    disable_progress_bars()  # a bar for casting a few rows is noise in logs

    chats = [group_chat(g, input_dir) for g in groups]
    data: dict[str, list[Any]] = {"prompt": [tag_prompt(m, g.group_id) for g, (m, _) in zip(groups, chats, strict=True)]}
    has_images = {len(paths) > 0 for _, paths in chats}
    if has_images == {True, False}:
        raise UserError(f"{input_dir}: some prompts have an image and some have none; train them separately")
    if has_images == {True}:
        data["images"] = [paths for _, paths in chats]
        return Dataset.from_dict(data).cast_column("images", List(Image()))
    return Dataset.from_dict(data)
