"""The report's charts, drawn with matplotlib (Agg, no display) and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

from .report_data import HeldOut, TurnStats

COMPONENTS = {"collision_ratio": "collision ratio", "out_of_bounds_ratio": "out-of-bounds ratio",
              "support_ratio": "unsupported ratio", "constraint_ratio": "constraint violation ratio",
              "format_reward": "format reward"}


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(title: str, xlabel: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    return fig, ax


def reward_curve(stats: list[TurnStats]) -> bytes:
    """Mean reward per iteration, one line per turn (multi-turn runs show the refinement gain)."""
    fig, ax = _figure("Mean reward per iteration", "iteration")
    for turn in sorted({s.turn for s in stats}):
        mine = [s for s in stats if s.turn == turn]
        ax.plot([s.iteration for s in mine], [s.means["reward"] for s in mine], marker="o", label=f"turn {turn}")
    ax.set_ylabel("reward")
    ax.set_xticks(sorted({s.iteration for s in stats}))
    ax.legend()
    return _png(fig)


def held_out_curve(points: list[HeldOut]) -> bytes:
    """Held-out reward of the model after each evaluated iteration, ± one standard error over rooms."""
    fig, ax = _figure("Held-out reward per iteration (eval_every)", "iteration (0: the start model)")
    ax.errorbar([p.iteration for p in points], [p.reward for p in points], yerr=[p.sem for p in points],
                marker="o", capsize=4)
    ax.set_ylabel("reward (mean over rooms ± s.e.)")
    ax.set_xticks([p.iteration for p in points])
    return _png(fig)


def component_curves(stats: list[TurnStats]) -> bytes:
    """The reward's components at each iteration's last turn."""
    fig, ax = _figure("Reward components (last turn)", "iteration")
    last: dict[int, TurnStats] = {}
    for s in stats:
        if s.iteration not in last or s.turn > last[s.iteration].turn:
            last[s.iteration] = s
    chosen = [last[i] for i in sorted(last)]
    for column, label in COMPONENTS.items():
        ax.plot([s.iteration for s in chosen], [s.means[column] for s in chosen], marker="o", label=label)
    ax.set_xticks(sorted(last))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)  # below: never over a line
    return _png(fig)


def update_curves(records: list[dict[str, Any]]) -> bytes | None:
    """Loss and reward logged by the update stage, over all update steps of the run."""
    keys = [k for k in ("loss", "reward", "reward_mean", "kl", "grad_norm")
            if any(isinstance(r.get(k), (int, float)) for r in records)]
    if not keys:
        return None
    fig, ax = _figure("Update steps", "update step (whole run)")
    for key in keys:
        points = [(i, r[key]) for i, r in enumerate(records, start=1) if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
    ax.legend(fontsize=8)
    return _png(fig)
