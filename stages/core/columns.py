"""The column names of the row contract, each defined once; their decoders are in `stages.core.rows`.

A stage declares its `needs` and `adds` from these names. gen-prompts adds the task, rollout the
sample, render the pictures and the parsed layout, score the reward columns.
"""

from __future__ import annotations

import pyarrow as pa

# gen-prompts
PROMPT_ID = "prompt_id"
PROMPT = "prompt"
SYSTEM_PROMPT = "system_prompt"
"""The system message of the row's chat (null: the model's default)."""
IMAGE = "image"
SCENE = "scene"
ROOM_SIZE = ("room_x", "room_y", "room_z")
SCENE_COLUMNS = [SCENE, *ROOM_SIZE]
REFERENCE_LAYOUT = "reference_layout"
# rollout
TURN = "turn"
TRAJECTORY_ID = "trajectory_id"
RESPONSE = "response"
HISTORY = "history"
RESPONSE_TOKEN_IDS = "response_token_ids"
RESPONSE_LOGPROBS = "response_logprobs"
# render
LAYOUT = "layout"
PARSE_ERROR = "parse_error"
RENDER_PREFIX = "render_"
RENDER_FIELDS = [pa.field(LAYOUT, pa.string()), pa.field(PARSE_ERROR, pa.string())]
"""Render's own columns besides its pictures: the valid placements as JSON {id: [x, y, z]} and the
answer's first problem. A record of what was drawn, for people and notebooks; no stage reads them
(score parses the response itself with the same `answer`, so it also works without a render)."""
# score
REWARD = "reward"
FEEDBACK = "feedback"
OBJECT_SCORES = "object_scores"
SCORE_FIELDS = [
    pa.field(REWARD, pa.float64()), pa.field("format_reward", pa.float64()),
    pa.field("collision_ratio", pa.float64()), pa.field("constraint_ratio", pa.float64()),
    pa.field("out_of_bounds_ratio", pa.float64()), pa.field("support_ratio", pa.float64()),
    pa.field("judge_score", pa.float64()), pa.field("judge_grades", pa.string()), pa.field("judge", pa.string()),
    pa.field("judge_error", pa.string()), pa.field("return", pa.float64()), pa.field(FEEDBACK, pa.string()),
    pa.field(OBJECT_SCORES, pa.string()), pa.field("score_preset", pa.string()),
    pa.field("upstream_crash", pa.string()),
]
# export
EXPORT_FIELDS = [pa.field("glb", pa.string()), pa.field("idesign", pa.string()),
                 pa.field("objects_exported", pa.int64()), pa.field("not_placed", pa.string())]
"""The exported files of one layout (paths relative to the export dataset) and what it left out."""
SCORED_COLUMNS = [f.name for f in RENDER_FIELDS + SCORE_FIELDS + EXPORT_FIELDS]
"""Columns that describe one turn's sample, not the next one's (a new turn drops them and the
`render_<view>` pictures; their values live on in `history`)."""


def render_column(view: str) -> str:
    """The column holding a view's picture: `render_topdown`, `render_corner_ne`, …"""
    return RENDER_PREFIX + view.replace("-", "_")


def is_turn_column(name: str) -> bool:
    """Whether a column belongs to the sample of one turn (see `SCORED_COLUMNS`)."""
    return name in SCORED_COLUMNS or name.startswith(RENDER_PREFIX)


