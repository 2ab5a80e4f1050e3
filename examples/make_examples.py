"""Write the small real-shaped inputs of the README's gen-prompts commands from rooms of the test
fixture (`tests/fixtures/upstream-oracle/scenes.jsonl`: IDesign scene graphs with the paper's room
descriptions). Run from the repository root; the output is the same on every run:

    python examples/make_examples.py

examples/idesign/  an IDesign output folder (`--source idesign --input examples/idesign --sizes …`)
examples/hf/       one Parquet part in the column layout of the paper's Hugging Face dataset (`--source hf`)
examples/assets/   a mesh for `render --assets` (a desk built from boxes with trimesh)
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from stages.core.render.plan import room_plan
from stages.core.scene import parse_room_size

HERE = Path(__file__).resolve().parent
SCENES = HERE.parent / "tests" / "fixtures" / "upstream-oracle" / "scenes.jsonl"
IDESIGN = {"room_674": "kitchen_674", "room_6194": "bedroom_6194", "room_2995": "nook_2995"}
HF = ("room_5422", "room_814", "room_5268")


def fixture_rooms() -> dict[str, dict]:
    return {room["room_id"]: room for room in map(json.loads, SCENES.read_text().splitlines())}


def _json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_idesign(rooms: dict[str, dict], out: Path) -> None:
    """Per room a folder as IDesign leaves it: `scene_graph.json` (the graph before placement, no
    positions) and, where IDesign solved it, `scene_graph-backtracked.json` (with positions). The last
    room is left unsolved. `sizes.json` gives descriptions, and the size of one room (the others' sizes
    are read from the walls in their files)."""
    sizes = {}
    for i, (room_id, folder) in enumerate(IDESIGN.items()):
        room = rooms[room_id]
        unplaced = [{k: v for k, v in o.items() if k != "position"} for o in room["scene_graph"]]
        _json(out / folder / "scene_graph.json", unplaced)
        if i < len(IDESIGN) - 1:
            _json(out / folder / "scene_graph-backtracked.json", room["scene_graph"])
        sizes[folder] = {"description": room["description"], "room_type": room["room_type"]}
        if i == 0:
            sizes[folder]["room_size"] = room["room_size"]
    _json(out / "sizes.json", sizes)


def _png(room: dict) -> bytes:
    buf = io.BytesIO()
    room_plan(parse_room_size(room["room_size"], "room_size"), 64).save(buf, format="PNG")
    return buf.getvalue()


def write_hf(rooms: dict[str, dict], out: Path) -> None:
    """Rows with the dataset's columns: `images` (a list of {bytes, path}), `problem` (an instruction,
    then the scene graph without positions after '## Input JSON Data:') and `answer` (room name,
    preference, size). The instruction is a stand-in written here, not the paper's wording."""
    rows = []
    for room_id in HF:
        room = rooms[room_id]
        graph = [{k: v for k, v in o.items() if k != "position"} for o in room["scene_graph"]]
        problem = ("<image>\n## Task Description\nPlace every object of the JSON below in the room: give the "
                   "centre (x, y, z) of each, in metres, inside <answer></answer> as a JSON list.\n"
                   "## Input JSON Data:\n" + json.dumps(graph, indent=2))
        answer = {"room_name": room_id, "user_preference": room["description"], "size_of_room": room["room_size"]}
        rows.append({"images": [{"bytes": _png(room), "path": None}], "problem": problem, "answer": json.dumps(answer)})
    schema = pa.schema([("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
                        ("problem", pa.string()), ("answer", pa.string())])
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / "train-00000-of-00001.parquet")


def write_assets(out: Path) -> None:
    """`desk.obj`: a top on four legs, 1 x 1 x 1 (render stretches a mesh to each desk's size box),
    z up, front towards +y, as `render --assets` expects."""
    import trimesh

    parts = [trimesh.creation.box((1.0, 1.0, 0.08), trimesh.transformations.translation_matrix((0, 0, 0.46)))]
    parts += [trimesh.creation.box((0.08, 0.08, 0.92), trimesh.transformations.translation_matrix((x, y, -0.04)))
              for x in (-0.44, 0.44) for y in (-0.44, 0.44)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "desk.obj").write_text(trimesh.util.concatenate(parts).export(file_type="obj"), encoding="utf-8")


def main() -> None:
    rooms = fixture_rooms()
    write_idesign(rooms, HERE / "idesign")
    write_hf(rooms, HERE / "hf")
    write_assets(HERE / "assets")
    print(f"wrote {HERE / 'idesign'}, {HERE / 'hf'} and {HERE / 'assets'}")


if __name__ == "__main__":
    main()
