"""Where rooms come from. Each source returns room records, validated before any work starts:

    {"room_id", "description", "room_type", "room_size": {x, y, z}, "scene_graph": [...], "source"}

`scene_graph` is an IDesign list (objects, then layout elements). Errors name the file, the
line or row, and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stages.core.dataset import iter_jsonl
from stages.core.errors import UserError
from stages.core.scene import Scene, parse_room_size

ROOM_TYPES = ("bedroom", "living room", "kitchen", "office", "dining room", "bathroom", "library", "studio",
              "playroom", "cafe", "gym", "nursery", "game room", "laundry room", "classroom", "bar")


def guess_room_type(description: str) -> str:
    """The first known room type named in a description ('A cozy library with ...' -> 'library')."""
    text = description.lower()
    hits = [(text.find(t), t) for t in ROOM_TYPES if t in text]
    return min(hits)[1] if hits else "room"


def room_record(raw: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    """Validate one room (its scene must parse) and normalise it to a room record."""
    for key in ("room_id", "room_size", "scene_graph"):
        if key not in raw:
            raise UserError(f"{where}: missing field '{key}'")
    if not isinstance(raw["room_id"], (str, int)) or isinstance(raw["room_id"], bool) or str(raw["room_id"]) == "":
        raise UserError(f"{where}, field room_id: expected a non-empty string, got {raw['room_id']!r}")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise UserError(f"{where}, field description: expected a string, got {description!r}")
    room_type = raw.get("room_type") or guess_room_type(description)
    scene = Scene.from_idesign(raw["scene_graph"], raw["room_size"], str(raw["room_id"]), description, room_type,
                               where=f"{where}, field scene_graph")
    return {"room_id": str(raw["room_id"]), "description": description, "room_type": room_type,
            "preference": raw.get("preference") or description, "room_size": scene.size.as_dict(),
            "scene_graph": raw["scene_graph"], "source": source, "problem": raw.get("problem")}


def check_unique(records: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        if rec["room_id"] in seen:
            raise UserError(f"{where}: room_id {rec['room_id']!r} appears twice (entries {seen[rec['room_id']] + 1} "
                            f"and {i + 1}); room ids must be unique")
        seen[rec["room_id"]] = i
    return records


class JsonlRooms:
    """A .jsonl file of rooms as a stream (a Source for the stage framework): one pass counts the rooms
    and checks that their ids are unique; a shard then parses and validates only its own lines, a
    chunk at a time. Lines `{room_id, description, room_size{x,y,z}, scene_graph}` (optional
    room_type, preference)."""

    schema = None
    columns: list[str] = []

    def __init__(self, path: Path | None) -> None:
        if path is None or not Path(path).is_file():
            raise UserError(f"--input: {path} is not a file (the jsonl source reads a .jsonl file of rooms)")
        self.path = Path(path)
        first: dict[str, int] = {}
        self.num_rows = 0
        for _, raw in iter_jsonl(self.path):
            room_id = raw.get("room_id")
            if isinstance(room_id, (str, int)) and not isinstance(room_id, bool):
                if str(room_id) in first:
                    raise UserError(f"{self.path}: room_id {str(room_id)!r} appears twice (entries "
                                    f"{first[str(room_id)] + 1} and {self.num_rows + 1}); room ids must be unique")
                first[str(room_id)] = self.num_rows
            self.num_rows += 1
        if not self.num_rows:
            raise UserError(f"{self.path}: no rooms in this file")

    def chunks(self, lo: int, hi: int, size: int, columns: list[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for index, (lineno, raw) in enumerate(iter_jsonl(self.path, skip=lo), start=lo):
            if index >= hi:
                break
            batch.append(room_record(raw, f"{self.path}, line {lineno}", "jsonl"))
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def verify(self, lo: int, hi: int) -> None:
        """Nothing recorded to verify against: a room file is the user's own."""


def from_jsonl(path: Path | None) -> list[dict[str, Any]]:
    """Every room of a .jsonl file, validated."""
    rooms = JsonlRooms(path)
    return [room for chunk in rooms.chunks(0, rooms.num_rows, 1024) for room in chunk]


HF_MARKER = "## Input JSON Data:"
HF_COLUMNS = ("problem", "answer")
HF_IMAGE_MARKER = "<image>"
"""Where the paper's prompts place the room image (at the start of every `problem`)."""
BACKTRACKED = "scene_graph-backtracked.json"


def from_idesign_dir(path: Path | None, sizes: Path | None) -> list[dict[str, Any]]:
    """A folder of IDesign `scene_graph*.json` files (searched recursively), one room per file.

    A file's key is its path inside the folder without `.json` (`room_0/scene_graph-backtracked`);
    a sizes entry may also be keyed by the file's folder name (`room_0`) or file stem. The room id is
    the key that matched (else the folder name for files in subfolders, else the stem). The room size
    comes from the sizes entry, else from IDesign's layout elements at the end of the file. When a
    folder holds `scene_graph-backtracked.json` (IDesign's solved graph, with positions), the other
    scene_graph*.json files there are earlier states of the same room and are skipped.
    """
    if path is None or not Path(path).is_dir():
        raise UserError(f"--input: {path} is not a folder (the idesign source reads a folder of scene_graph*.json files)")
    folder = Path(path)
    files = [f for f in sorted(folder.rglob("scene_graph*.json"))
             if f.name == BACKTRACKED or not (f.parent / BACKTRACKED).exists()]
    if not files:
        raise UserError(f"--input: no scene_graph*.json files in {folder} or its subfolders")
    table = load_sizes(sizes) if sizes is not None else {}
    records = []
    for file in files:
        keys = [file.relative_to(folder).with_suffix("").as_posix()]
        keys += [file.parent.name] if file.parent != folder else []
        keys.append(file.stem)
        key = next((k for k in keys if k in table), None)
        entry = table.get(key, {}) if key else {}
        graph = read_json_file(file)
        default_id = file.parent.name if file.parent != folder else file.stem
        raw = {"room_id": key or default_id, "scene_graph": graph, **entry}
        if "room_size" not in entry:
            raw["room_size"] = size_from_layout_elements(graph, file, sizes)
        else:
            check_sizes_agree(graph, raw["room_size"], file, f"{sizes}, entry {key!r}")
        records.append(room_record(raw, str(file), "idesign"))
    return check_unique(records, str(folder))


def read_json_file(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{file}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError:
        raise UserError(f"{file}: not UTF-8 text") from None


def load_sizes(sizes: Path) -> dict[str, dict[str, Any]]:
    """The --sizes file: {key: {"room_size": {x, y, z}, "description": ..., "room_type": ..., "preference": ...}}."""
    if not Path(sizes).is_file():
        raise UserError(f"--sizes: {sizes} is not a file")
    table = read_json_file(Path(sizes))
    if not isinstance(table, dict):
        raise UserError(f"{sizes}: expected a JSON object mapping each room (file key) to {{room_size, description}}")
    allowed = {"room_size", "description", "room_type", "preference"}
    for key, entry in table.items():
        if not isinstance(entry, dict):
            raise UserError(f"{sizes}, entry {key!r}: expected an object {{room_size, description}}, got {entry!r}")
        unknown = set(entry) - allowed
        if unknown:
            raise UserError(f"{sizes}, entry {key!r}: unknown field(s) {', '.join(sorted(unknown))} "
                            f"(allowed: {', '.join(sorted(allowed))})")
        if "room_size" in entry:
            parse_room_size(entry["room_size"], f"{sizes}, entry {key!r}, field room_size")
    return table


def layout_size(graph: Any) -> dict[str, float] | None:
    """The room size IDesign's layout elements imply (south wall length, east wall length, wall height)."""
    if not isinstance(graph, list):
        return None
    walls: dict[Any, Any] = {o.get("new_object_id"): o.get("size_in_meters") for o in graph
                             if isinstance(o, dict) and "itemType" in o}
    try:
        return {"x": walls["south_wall"]["length"], "y": walls["east_wall"]["length"], "z": walls["south_wall"]["height"]}
    except (KeyError, TypeError):
        return None


def size_from_layout_elements(graph: Any, file: Path, sizes: Path | None) -> dict[str, float]:
    size = layout_size(graph)
    if size is None:
        hint = f"add an entry for it to {sizes}" if sizes else "pass --sizes FILE with an entry for it"
        raise UserError(f"{file}: no room size: the file has no IDesign layout elements; {hint}")
    parse_room_size(size, f"{file}, layout elements (south_wall/east_wall size_in_meters)")
    return size


def check_sizes_agree(graph: Any, room_size: dict[str, float], file: Path, where: str) -> None:
    """A sizes entry must describe the room the file's walls were placed in (positions depend on it)."""
    implied = layout_size(graph)
    if implied and any(abs(float(implied[a]) - float(room_size[a])) > 1e-6 for a in "xyz"
                       if isinstance(implied[a], (int, float))):
        raise UserError(f"{where}, field room_size: {room_size} disagrees with the layout elements of {file} "
                        f"({implied})")


def from_hf(path: Path | None, dataset: str | None, split: str) -> list[dict[str, Any]]:
    """The paper's dataset (columns images, problem, answer): a local Parquet file or folder of them,
    or a Hub dataset. Only `problem` (the scene JSON after its '## Input JSON Data:' marker) and
    `answer` (JSON: room_name, user_preference, size_of_room) are read; the images are not used
    because every source gets the same empty-room image drawn by gen-prompts."""
    rows = hf_local_rows(Path(path)) if path is not None else hf_hub_rows(dataset or "", split)
    records = [hf_record(problem, answer, where) for problem, answer, where in rows]
    if not records:
        raise UserError(f"{path or dataset}: no rows")
    return check_unique(records, str(path or dataset))


def hf_local_rows(path: Path) -> list[tuple[Any, Any, str]]:
    import pyarrow.parquet as pq

    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
    elif path.is_file():
        files = [path]
    else:
        files = []
    if not files:
        raise UserError(f"--input: {path} is neither a Parquet file nor a folder holding some")
    rows = []
    for file in files:
        try:
            names = pq.ParquetFile(file).schema_arrow.names
        except Exception as err:  # pyarrow raises several types for a file that is not Parquet
            raise UserError(f"{file}: not a readable Parquet file ({err})") from None
        missing = [c for c in HF_COLUMNS if c not in names]
        if missing:
            raise UserError(f"{file}: missing column(s) {', '.join(missing)} (the hf source needs "
                            f"{', '.join(HF_COLUMNS)}; found {', '.join(names)})")
        table = pq.read_table(file, columns=list(HF_COLUMNS))
        rows += [(p, a, f"{file}, row {i}") for i, (p, a) in
                 enumerate(zip(table.column("problem").to_pylist(), table.column("answer").to_pylist(), strict=True))]
    return rows


def hf_hub_rows(dataset: str, split: str) -> list[tuple[Any, Any, str]]:
    import datasets

    try:
        data = datasets.load_dataset(dataset, split=split)
    except Exception as err:  # offline, unknown name or split, no access: all for the user to fix
        raise UserError(f"--dataset {dataset} --split {split}: could not load it from the Hugging Face Hub "
                        f"({type(err).__name__}: {err})") from None
    missing = [c for c in HF_COLUMNS if c not in data.column_names]
    if missing:
        raise UserError(f"--dataset {dataset} ({split}): missing column(s) {', '.join(missing)}")
    data = data.select_columns(list(HF_COLUMNS))
    return [(row["problem"], row["answer"], f"{dataset} ({split}), row {i}") for i, row in enumerate(data)]


def problem_text(problem: str) -> str:
    """The dataset's prompt without its leading image marker: the image goes before the text in the
    chat, where the paper's code put the image tokens in place of the marker, so the tokens agree."""
    return problem[len(HF_IMAGE_MARKER):] if problem.startswith(HF_IMAGE_MARKER) else problem


def hf_record(problem: Any, answer: Any, where: str) -> dict[str, Any]:
    """One row of the paper's dataset as a room record; errors name the row and field."""
    if not isinstance(problem, str) or HF_MARKER not in problem:
        raise UserError(f"{where}, field problem: expected text holding the scene JSON after {HF_MARKER!r}")
    text = problem.split(HF_MARKER, 1)[1].lstrip()
    try:
        graph, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{where}, field problem: the scene JSON after {HF_MARKER!r} is not valid JSON "
                        f"({err.msg} at line {err.lineno}, column {err.colno})") from None
    try:
        info = json.loads(answer) if isinstance(answer, str) else None
    except json.JSONDecodeError as err:
        raise UserError(f"{where}, field answer: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(info, dict):
        raise UserError(f"{where}, field answer: expected a JSON object {{room_name, user_preference, size_of_room}}")
    for key in ("room_name", "user_preference", "size_of_room"):
        if key not in info:
            raise UserError(f"{where}, field answer.{key}: missing")
    parse_room_size(info["size_of_room"], f"{where}, field answer.size_of_room")
    raw = {"room_id": info["room_name"], "description": info["user_preference"], "preference": info["user_preference"],
           "room_size": info["size_of_room"], "scene_graph": graph, "problem": problem_text(problem)}
    return room_record(raw, where, "hf")
