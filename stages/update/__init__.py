"""Update the policy with GRPO (TRL) from a scored rollout dataset; writes a model directory.

`update` reads the rows that `rollout` sampled and `score` rewarded, groups them by `group_id`, and
runs TRL's `GRPOTrainer` on exactly those completion tokens and rewards (no new sampling). The
output is a Hugging Face model directory that `rollout --model` loads: full weights, or a LoRA
adapter that names its base model (`--merge-lora` writes merged weights instead), plus
`metrics.jsonl` (one record per optimizer step) and `_manifest.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from stages.core import vlm
from stages.core.errors import UserError
from stages.core.model_output import ModelStageConfig


class Config(ModelStageConfig, vlm.PixelLimits):
    """Options of `update`: a model-writing stage (output, overwrite, manifest and resume shared with
    `pretrain`). It has no sharding: a model update is one job (spread over GPUs and nodes by
    `accelerate launch`)."""

    input: Path | None = None
    """Scored rollout dataset: a directory of Parquet or JSONL parts with prompt, response, group_id and rewards."""
    model: str = ""
    """The policy the rollouts were sampled from: a model directory (or LoRA adapter directory) or hub name."""
    max_rows: int | None = Field(default=None, ge=1)
    """Read only the first N input rows (for quick looks)."""
    split: str = "train"
    """Train only on rows whose `split` column has this value; '' trains on every row."""
    turns: Literal["final", "every"] = "final"
    """Multi-turn data: train on each trajectory's final turn (the paper), or on every turn with its own return."""
    group_by: str | None = None
    """Column(s), comma-separated, whose equal values form a GRPO group (default: group_id; for multi-turn
    data prompt_id with --turns final, comparing a room's trajectories, and prompt_id,turn with --turns every)."""
    reward_column: str = "return"
    """Column holding each completion's reward: `return` (trajectory return; equals `reward` for one turn) or `reward`."""
    max_length: int | None = Field(default=None, ge=1)
    """Longest prompt + completion in tokens (default: the model's context length)."""
    skip_too_long: bool = False
    """Drop groups whose prompt + completion exceeds --max-length instead of stopping with an error."""
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = "dapo"
    """TRL loss: grpo (per-sequence mean), dr_grpo, dapo (token mean over the batch), bnpo, cispo, sapo."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Divide advantages by the reward std of the group, of the batch, or not at all (Dr. GRPO)."""
    beta: float = Field(default=0.0, ge=0.0)
    """KL penalty weight towards --reference-model (0 = no reference model is loaded)."""
    reference_model: str = ""
    """The KL term's reference policy (default: --model). Recipes pass their initial policy, so every iteration
    is held to the same model. Loaded in bfloat16 on GPUs with --bf16; with LoRA over this same base model the
    reference is the policy with adapters disabled (nothing loaded)."""
    epsilon: float = Field(default=0.2, gt=0.0)
    """Lower clip range of the probability ratio (and upper unless --epsilon-high)."""
    epsilon_high: float | None = Field(default=None, gt=0.0)
    """Upper clip range of the ratio (DAPO suggests 0.28)."""
    delta: float | None = Field(default=None, gt=1.0)
    """Two-sided clipping: cap the ratio at this value (INTELLECT-2); off by default."""
    importance_sampling_level: Literal["token", "sequence"] = "token"
    """Ratio per token (GRPO) or per sequence (GSPO)."""
    off_policy_mask_threshold: float | None = Field(default=None, gt=0.0)
    """Off-policy sequence masking (DeepSeek-V3.2): drop negative-advantage completions whose mean
    log-probability drifted more than this from sampling time. Needs rollout --logprobs."""
    off_policy_correction: bool = True
    """Use the stored sampling log-probabilities (rollout --logprobs) as the old log-probabilities of the
    clipped ratio, so clipping acts on completions an older policy (or vLLM) sampled. Without them, or with
    --no-off-policy-correction, the ratio is taken against the policy at the start of each step (1 at first)."""
    object_credit: float | None = Field(default=None, ge=0.0)
    """Object-level credit (the paper's 3D-SPO): the tokens of each object's entry get the sequence advantage
    plus STRENGTH times that object's own advantage (its score's object_scores against the same object in
    the group's other samples; see the README). Unset: plain GRPO; 0 gives plain GRPO's loss through the
    per-token path; 1 weighs an object's own quality like the whole answer's."""
    loss_tokens: Literal["all", "free"] = "all"
    """Completion tokens the loss counts: all, or free: only what a guided grammar leaves to the model (the
    reasoning and each coordinate value, with the character that ends it). The ids, keys and punctuation a
    grammar forces carry no decision: their gradient is noise, and they are most of a layout's tokens, so
    under the token-mean losses they dilute every real decision. Use free with rollout --guided."""
    entropy_coef: float = Field(default=0.0, ge=0.0)
    """Entropy bonus: subtract this times the mean token entropy from the loss (the paper: 1e-3)."""
    temperature: float | None = Field(default=None, gt=0.0)
    """Temperature the log-probabilities are computed at (default: the rows' `temperature`, i.e. rollout's
    sampling temperature, which the stored log-probabilities were taken at; 1.0 without that column)."""
    num_iterations: int = Field(default=1, ge=1)
    """Optimisation passes over each batch of stored completions (PPO epochs, mu)."""
    learning_rate: float = Field(default=1e-6, gt=0.0)
    """Peak learning rate of AdamW."""
    lr_scheduler_type: Literal["constant", "linear", "cosine", "constant_with_warmup"] = "constant"
    """Learning-rate schedule over the update."""
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Share of the steps spent warming the learning rate up."""
    weight_decay: float = Field(default=0.0, ge=0.0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(default=1.0, ge=0.0)
    """Clip the gradient norm to this (0 = no clipping)."""
    per_device_train_batch_size: int = Field(default=8, ge=1)
    """Completions per forward/backward pass on each device."""
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    """Forward/backward passes per optimizer step. Completions per step (batch x accumulation x devices) must
    be a multiple of the group size."""
    num_train_epochs: float = Field(default=1.0, gt=0.0)
    """Passes over the stored groups."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides --num-train-epochs)."""
    seed: int = 0
    """Seed of the batch order and of LoRA initialisation."""
    lora_r: int = Field(default=0, ge=0)
    """LoRA rank; 0 trains all weights."""
    lora_alpha: int = Field(default=32, ge=1)
    """LoRA scaling alpha."""
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    """LoRA dropout."""
    lora_target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names LoRA adapts (comma-separated)."""
    merge_lora: bool = False
    """With LoRA: write merged full weights instead of the adapter."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    bf16: bool = True
    """Train in bfloat16 on GPUs (ignored on CPU, which trains in float32)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Policy weights on GPUs (CPU: always float32). auto: bfloat16 for LoRA (the base is frozen) and under
    DeepSpeed (its optimizer keeps float32 master weights); otherwise float32 master weights with bfloat16
    compute (--bf16: autocast, FSDP mixed precision). Plain bfloat16 weights drop Adam steps smaller than
    their precision (about 1e-3 relative), e.g. most steps at the paper's learning rate 1e-6."""
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = "sdpa"
    """Attention kernel of the policy and the reference: sdpa (PyTorch), flash_attention_2 (GPUs with the
    flash-attn package) or eager."""
    save_steps: int = Field(default=50, ge=1)
    """Write a resumable checkpoint every N optimizer steps (kept under OUTPUT/_checkpoints until done)."""
    keep_checkpoints: bool = False
    """Keep OUTPUT/_checkpoints after a successful update (default: remove them)."""
    checkpoints_to_keep: int = Field(default=1, ge=1)
    """Newest resumable checkpoints kept under OUTPUT/_checkpoints while the update runs; older ones are
    deleted (each holds the full weights and optimizer state: about 16 bytes a parameter)."""
    report_to: list[Literal["none", "tensorboard", "wandb", "trackio"]] = ["none"]
    """Experiment trackers to log to besides metrics.jsonl (comma-separated)."""

    RUN_FIELDS: ClassVar[tuple[str, ...]] = ("input", "output", "overwrite", "keep_checkpoints", "checkpoints_to_keep",
                                             "report_to")
    """Fields that do not change the trained model; an interrupted update may resume across them."""

    @model_validator(mode="after")
    def _checks(self) -> Config:
        if not self.model:
            raise ValueError("--model is required: the policy the rollouts were sampled from")
        if self.merge_lora and self.lora_r == 0:
            raise ValueError("--merge-lora needs --lora-r > 0")
        return self


def run(cfg: Config) -> Path:
    """Run the update; returns the output model directory."""
    if not isinstance(cfg, Config):
        raise UserError("update: expected an update.Config")
    from .train import run_update

    return run_update(cfg)
