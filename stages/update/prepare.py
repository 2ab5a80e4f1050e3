"""Turn checked groups into what the trainer consumes: token ids per sample and a group dataset.

Each sample's prompt is rebuilt with the message builder `rollout` used (`vlm.build_messages`), so
the prompt tokens here are the tokens its completion was sampled after. The trainer's dataset has
one row per group (its id); the bridge swaps in each sample's own chat and images at train time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.core import rows, vlm
from stages.core.answer import free_spans
from stages.core.columns import RESPONSE_TOKEN_IDS
from stages.core.errors import UserError, where
from stages.core.paths import confined

from .groups import Group, Sample
from .object_credit import group_credit, token_spans
from .trl_bridge import GROUP_COLUMN, StoredGroup

SHOWN = 5


@dataclass
class Prepared:
    """Groups ready for training, and what was dropped on the way."""

    groups: list[Group]
    stored: dict[str, StoredGroup]
    too_long: list[str]
    longest: int


def _image_path(input_dir: Path, ref: Any) -> str:
    path = confined(input_dir, ref, f"{input_dir}, image")
    if not path.is_file():
        raise UserError(f"{input_dir}: image {ref} not found (expected at {path})")
    return str(path)


def sample_chat(sample: Sample, input_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The sample's chat with image placeholders, and the image files that fill them, in order."""
    messages = vlm.build_messages(sample.prompt, sample.image, rows.history(sample.history), sample.system)
    paths = [_image_path(input_dir, ref) for ref in vlm.message_images(messages)]
    stripped = [{**m, "content": [{"type": "image"} if part.get("type") == "image" else part
                                  for part in m["content"]]} if isinstance(m["content"], list) else m
                for m in messages]
    return stripped, paths


def _prompt_ids(processor: Any, messages: list[dict[str, Any]], paths: list[str], input_dir: Path) -> list[int]:
    """Prompt tokens exactly as the processor expands them (image placeholders become image tokens)."""
    images = [vlm.open_image(None, p) for p in paths]  # confined by _image_path
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


def _completion_ids(sample: Sample, tokenizer: Any, input_dir: Path) -> list[int]:
    """The sampled tokens, each checked against the tokenizer's vocabulary (an id beyond it would
    fail inside the embedding); for datasets without them, the response text tokenized, ended by EOS."""
    ids = rows.token_ids(sample.token_ids, where(input_dir, sample.row, RESPONSE_TOKEN_IDS), len(tokenizer))
    if ids is not None:
        return ids
    return list(tokenizer(sample.response, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]


def free_tokens(ids: list[int], decode: Any) -> list[tuple[int, int]]:
    """Token ranges of a completion's free spans (`answer.free_spans`): what `--loss-tokens free` trains on."""
    spans = {str(k): span for k, span in enumerate(free_spans(decode(ids)))}
    return list(token_spans(decode, ids, spans).values())


def encode_groups(groups: list[Group], processor: Any, input_dir: Path, max_length: int,
                  skip_too_long: bool, object_credit: bool = False, free_only: bool = False) -> Prepared:
    """Tokenize every sample once, checking lengths against the model's context before training; with
    `object_credit`, find each completion's object entries and their object advantages too; with
    `free_only`, the token ranges the loss keeps (`--loss-tokens free`)."""
    tokenizer = processor.tokenizer

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    stored: dict[str, StoredGroup] = {}
    kept, too_long, longest = [], [], 0
    prompts: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[str], list[int]]] = {}
    for group in groups:
        chats, paths, prompt_ids = [], [], []
        for sample in group.samples:
            key = (sample.prompt, sample.image, sample.history, sample.system)
            if key not in prompts:  # the samples of a group usually share their prompt
                chat, files = sample_chat(sample, input_dir)
                prompts[key] = (chat, files, _prompt_ids(processor, chat, files, input_dir))
            chats.append(prompts[key][0])
            paths.append(prompts[key][1])
            prompt_ids.append(prompts[key][2])
        completions = [_completion_ids(s, tokenizer, input_dir) for s in group.samples]
        length = max(len(p) + len(c) for p, c in zip(prompt_ids, completions, strict=True))
        if length > max_length:
            too_long.append(group.group_id)
            continue
        longest = max(longest, length)
        kept.append(group)
        logprobs: list[list[float | None]] = [list(s.logprobs) if s.logprobs is not None else [None] * len(c)
                                              for s, c in zip(group.samples, completions, strict=True)]
        credit = group_credit(completions, [s.object_scores for s in group.samples], decode) if object_credit else []
        free = [free_tokens(ids, decode) for ids in completions] if free_only else []
        stored[group.group_id] = StoredGroup(chats, paths, prompt_ids, completions, group.rewards, logprobs, credit,
                                             free)
    with_images = {bool(files) for _, files, _ in prompts.values()}
    if len(with_images) > 1:
        raise UserError(f"{input_dir}: some prompts show an image and some none; TRL needs one kind per "
                        "update (train them separately)")
    if too_long and not skip_too_long:
        shown = ", ".join(too_long[:SHOWN]) + (", ..." if len(too_long) > SHOWN else "")
        raise UserError(f"{input_dir}: {len(too_long)} of {len(groups)} group(s) have prompt + completion longer "
                        f"than {max_length} tokens (the model's context or --max-length): {shown}. "
                        "Pass --skip-too-long to train without them")
    if not kept:
        raise UserError(f"{input_dir}: no group fits in {max_length} tokens; nothing to train on")
    return Prepared(kept, stored, too_long, longest)


def train_dataset(groups: list[Group]) -> Any:
    """The trainer's dataset: one row per group. TRL requires a `prompt`; the bridge replaces it with
    each sample's own chat when the batch is drawn."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [[{"role": "user", "content": g.group_id}] for g in groups],
                              GROUP_COLUMN: [g.group_id for g in groups]})
