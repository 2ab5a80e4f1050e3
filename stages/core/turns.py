"""The text of a follow-up turn: the original task, the previous answer, its reward and feedback.

Multi-turn refinement (MetaSpatial's multi-turn rollouts): after turn k is rendered and scored,
turn k+1 shows the model its own previous layout, the reward it earned and a short structured
list of what went wrong, next to the render of that layout. `history` entries are dicts
`{"turn", "response", "reward", "feedback", "image"}`, with `feedback` as the score stage writes it:
`{"collisions": [[a, b], ...], "out_of_bounds": [ids], "violations": [{"object_id", "preposition",
"target"}], "unsupported": [ids], "missing": [ids], "unknown": [ids], "duplicates": [ids],
"parse_error": str | None}`; absent keys mean no such problem.

An entry with `"followup": "paper"` asks for the paper's form of the next prompt instead (rollout
--followup paper): the task prompt, the previous response in full (reasoning included) and its
reward, without structured feedback, as MetaSpatial's training code builds it. That code formats
the first prompt's token ids and the reward tensor into the text (upstream slips); here the prompt
text and the reward as a number stand in, which is what it meant.
"""

from __future__ import annotations

from typing import Any

from .answer import answer_block

MAX_ITEMS = 8
"""At most this many entries per kind of problem; the rest are counted ("+3 more")."""
MAX_ANSWER_CHARS = 4000
"""A previous answer longer than this is cut (a runaway response must not swamp the prompt)."""
MAX_RESPONSE_CHARS = 16000
"""The paper's form repeats the whole response; cut beyond this (about the paper's 4000 tokens)."""


def previous_answer(response: str) -> str:
    """The `<answer>…</answer>` block that was scored (the one `parse_answer` reads; the reasoning is
    not repeated), else the whole response."""
    block = answer_block(response)
    text = f"<answer>{block.strip()}</answer>" if block is not None else (response or "").strip()
    return text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS] + " …(cut)"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_ITEMS])
    return shown + (f" (+{len(items) - MAX_ITEMS} more)" if len(items) > MAX_ITEMS else "")


def feedback_lines(feedback: dict[str, Any] | None) -> list[str]:
    """One line per kind of problem, in a fixed order; no lines when nothing was wrong. `feedback`
    is decoded (`stages.core.rows.feedback`)."""
    feedback = feedback or {}
    lines = []
    if feedback.get("parse_error"):
        lines.append(f"- The answer could not be read: {str(feedback['parse_error'])[:200]}")
    if feedback.get("collisions"):
        lines.append("- Overlapping objects: " + _listed([f"{a} & {b}" for a, b in feedback["collisions"]]))
    if feedback.get("out_of_bounds"):
        lines.append("- Outside the room: " + _listed(list(feedback["out_of_bounds"])))
    if feedback.get("violations"):
        lines.append("- Relations not met: " + _listed(
            [f"{v['object_id']} should be {v['preposition']} {v['target']}" for v in feedback["violations"]]))
    if feedback.get("unsupported"):
        lines.append("- Floating, with nothing under them: " + _listed(list(feedback["unsupported"])))
    if feedback.get("duplicates"):
        lines.append("- Ids placed more than once: " + _listed(list(feedback["duplicates"])))
    if feedback.get("missing"):
        lines.append("- Objects missing from the answer: " + _listed(list(feedback["missing"])))
    if feedback.get("unknown"):
        lines.append("- Ids that are not in the room: " + _listed(list(feedback["unknown"])))
    return lines


def _reward_text(reward: Any) -> str:
    return f"{reward:.3f}" if isinstance(reward, (int, float)) else "not scored"


def paper_followup_text(prompt: str, last: dict[str, Any]) -> str:
    """Turn k+1 in the paper's form: task, previous full response, previous reward, then the cue to
    answer again (the sections of MetaSpatial's multi-turn prompt, in this project's words)."""
    response = (last.get("response") or "").strip()
    if len(response) > MAX_RESPONSE_CHARS:
        response = response[:MAX_RESPONSE_CHARS] + " …(cut)"
    return "\n".join([
        prompt.rstrip(),
        "That is the task. Your previous response and the reward it earned follow; write your next response.",
        "=== Previous response ===", response,
        "=== Previous reward ===", _reward_text(last.get("reward")),
        "=== Next response ===",
    ])


def followup_text(prompt: str, last: dict[str, Any]) -> str:
    """The prompt of turn k+1 from the task prompt and turn k's history entry (in the paper's form
    when the entry asks for it)."""
    if last.get("followup") == "paper":
        return paper_followup_text(prompt, last)
    reward_text = _reward_text(last.get("reward"))
    problems = feedback_lines(last.get("feedback"))
    parts = [
        prompt.rstrip(),
        "",
        f"Your previous layout (turn {last.get('turn', '?')}) was:",
        previous_answer(last.get("response", "")),
        f"It earned a reward of {reward_text} (higher is better).",
        "Problems found:" if problems else "No rule violations were found.",
        *problems,
        ("The image shows a render of that layout. " if last.get("image") else "")
        + "Write an improved layout in the same format: think inside <think></think>, "
        "then give the full layout inside <answer></answer>.",
    ]
    return "\n".join(parts)
