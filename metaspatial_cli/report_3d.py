"""The report's 3D section: each evaluated model's best held-out layout in the export viewer.

The report page itself stays script-free (it is mailed and archived); the 3D page is written next
to it (`report-3d.html`: three.js and the rooms inlined, works offline) and shown in an iframe.

    fragment = report_3d.section(run_dir, report_path)   # "" when the run has no evaluation
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from stages.core import dataset as ds
from stages.core.errors import UserError
from stages.export.rows import NEEDS
from stages.export.viewer import Room, page
from stages.export.work import row_glb

SUFFIX = "-3d.html"


def best_rows(run_dir: Path) -> list[tuple[str, dict[str, Any], Path]]:
    """(model label, its highest-reward held-out row, dataset) for each evaluated model with scores."""
    from .report_data import eval_table

    dirs = sorted((run_dir / "eval").glob("model-*/score"), key=lambda p: int(p.parent.name.split("-")[1]))
    labels = [row["model"] for row in eval_table(run_dir)]
    found = []
    for i, path in enumerate(dirs):
        try:
            rows = ds.read_rows(path)
        except UserError:  # still being written
            continue
        scored = [r for r in rows if isinstance(r.get("reward"), float) and math.isfinite(r["reward"])
                  and all(k in r for k in NEEDS)]
        if scored:
            label = labels[i] if i < len(labels) else path.parent.name
            found.append((label, max(scored, key=lambda r: r["reward"]), path))
    return found


def section(run_dir: Path, report_path: Path) -> str:
    """Write the 3D page next to `report_path` and return the report's HTML section showing it."""
    best = best_rows(run_dir)
    if not best:
        return ""
    try:
        rooms = [Room(f"{label}: room {row.get('room_id')} (reward {row['reward']:.3f})",
                      row_glb(row, f"{path}, sample {row.get('sample_id')}")) for label, row, path in best]
    except UserError as err:  # a scene the eval's own stages accepted; say so rather than lose the report
        return f"<h2>Best held-out layout per model, in 3D</h2><p>Not shown: {html.escape(str(err))}</p>"
    target = report_path.with_name(report_path.stem + SUFFIX)
    ds.write_bytes(target, page(rooms, f"metaspatial: best held-out layouts of {run_dir.name}").encode("utf-8"))
    link = html.escape(target.name)
    return (f"<h2>Best held-out layout per model, in 3D</h2><p>Pick the model in the page's menu; drag to orbit. "
            f"<a href=\"{link}\">Open in its own tab</a>.</p>"
            f"<iframe src=\"{link}\" title=\"3D viewer\" style=\"width:100%;height:560px;border:1px solid #ccc\">"
            f"</iframe>")
