"""The export stage's per-row work: parse the answer, build the glTF scene and the IDesign graph, write both.

Files go to `DIR/_scenes/<name>/scene.glb` and `scene_graph.json`, where the name is the room id
(or sample id) reduced to safe characters plus a hash of the row: no path is built from what a
dataset says, the same row always gets the same name, and the folder `DIR/_scenes` reads back as
an IDesign folder (`gen-prompts --source idesign --input DIR/_scenes`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from stages.core import dataset as ds
from stages.core.columns import OBJECT_SCORES
from stages.core.numbers import finite_number
from stages.core.render import Arrangement
from stages.core.render.assets import AssetLibrary
from stages.core.rows import answer, object_scores
from stages.core.scene import Scene, layout_elements

from .gltf import build_scene, glb_bytes
from .rows import SOURCE, scene_of

SCENES_DIR = "_scenes"
GLB, GRAPH = "scene.glb", "scene_graph.json"
METRICS = ("reward", "format_reward", "collision_ratio", "constraint_ratio", "out_of_bounds_ratio",
           "support_ratio", "judge_score", "return")
IDENTITY = ("room_id", "prompt_id", "sample_id", "trajectory_id", "turn", "model", "room_type", "preference")


def folder_name(row: dict[str, Any], fingerprint: str, by_room: bool = False) -> str:
    """`<id>-<hash>`: readable (the room id when there is one row per room, else the sample id),
    unique per row content, and made only of [A-Za-z0-9_.-]."""
    first, second = ("room_id", "sample_id") if by_room else ("sample_id", "room_id")
    label = str(row.get(first) or row.get(second) or "row")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._")[:60] or "row"
    content = json.dumps({k: v for k, v in row.items() if k != SOURCE}, sort_keys=True, default=str)
    digest = hashlib.sha1(f"{fingerprint}\0{content}".encode()).hexdigest()[:12]
    return f"{slug}-{digest}"


def scene_extras(row: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {k: row[k] for k in IDENTITY if isinstance(row.get(k), (str, int))}
    extras.update({k: row[k] for k in METRICS if finite_number(row.get(k))})
    return extras


def idesign_graph(scene: Scene, arr: Arrangement) -> list[dict[str, Any]]:
    """The scene graph with every answered position and every object's rotation filled in."""
    positions = {item.id: item.position for item in arr.items if item.position is not None}
    graph = []
    for obj in scene.objects:
        entry = obj.to_idesign(with_position=False)
        entry["rotation"] = {"z_angle": scene.z_angle(obj)}
        if obj.id in positions:
            entry["position"] = dict(zip("xyz", positions[obj.id], strict=True))
        graph.append(entry)
    return graph + layout_elements(scene.size)


def layout_scene(row: dict[str, Any], scene: Scene, assets: AssetLibrary | None):
    """(glTF scene, arrangement) of a row: its answer parsed against its scene (never raises on the answer)."""
    parsed = answer(row, scene.ids)
    arr = Arrangement.from_scene(scene, parsed.placements, omitted=parsed.missing, error=parsed.error,
                                 unknown=parsed.unknown)
    return build_scene(arr, assets, scene_extras(row), object_scores(row.get(OBJECT_SCORES))), arr


def row_glb(row: dict[str, Any], where: str) -> bytes:
    """The .glb of one dataset row with procedural meshes (what `report` shows); SceneError names `where`."""
    return glb_bytes(layout_scene(row, scene_of(row, where), None)[0])


class Exporter:
    """Exports rows into one dataset directory; holds the asset library and the decoded scenes."""

    def __init__(self, output: Path, assets: Path | None, by_room: bool = False) -> None:
        self.output, self.by_room = output, by_room
        self.assets = AssetLibrary(assets) if assets is not None else None
        self.fingerprint = json.dumps([str(assets.resolve()) if assets else None])

    def export(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its export columns (the files are on disk when this returns)."""
        source = Path(row.pop(SOURCE))
        scene = scene_of(row, str(source))
        gltf_scene, arr = layout_scene(row, scene, self.assets)
        folder = f"{SCENES_DIR}/{folder_name(row, self.fingerprint, self.by_room)}"
        (self.output / folder).mkdir(parents=True, exist_ok=True)
        ds.write_bytes(self.output / folder / GLB, glb_bytes(gltf_scene))
        ds.write_bytes(self.output / folder / GRAPH, json.dumps(idesign_graph(scene, arr), indent=1).encode())
        for value in row.values():
            if ds.is_image_ref(value):
                ds.link_image(source, self.output, value)
        unplaced = gltf_scene.metadata["not_placed"]
        return {**row, "glb": f"{folder}/{GLB}", "idesign": f"{folder}/{GRAPH}", "objects_exported": len(arr.drawn),
                "not_placed": json.dumps(unplaced) if unplaced else None}
