"""The stages the command line knows, in one place: their modules, the pipeline order and the
options the recipe runner sets itself.

Imports no other command-line module and a stage only when its config class is asked for, so every
command-line module (app, recipes, eval) can import it without an import circle.
"""

from __future__ import annotations

import importlib

from pydantic import BaseModel

STAGES = {"gen-prompts": "stages.gen_prompts", "rollout": "stages.rollout", "render": "stages.render",
          "score": "stages.score", "update": "stages.update", "export": "stages.export",
          "select-rooms": "stages.select_rooms"}
"""Every stage command and the package holding its `Config` and `run`."""
PIPELINE = ("gen-prompts", "rollout", "render", "score", "update")
"""The order a recipe runs its stages in."""
TURN_STAGES = PIPELINE[1:4]
"""The stages run once per turn of an iteration (rollout, render, score)."""
EVAL_STAGES = PIPELINE[:4]
"""The stages `eval` runs (no update), each with its own section of options."""
RUNNER_FIELDS = {"input", "output", "num_shards", "shard_index"}
"""Options the runner sets on every step's command line (they depend on where the step sits), so a
recipe or eval section may not set them."""


def config_class(stage: str) -> type[BaseModel]:
    """The stage's Config class: its fields are the stage's flags and the keys of its recipe section."""
    return importlib.import_module(STAGES[stage]).Config
