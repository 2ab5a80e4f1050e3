"""Placing a scene graph we did not make (a language model's) with the constructive placer.

Objects are placed parents first (an object after every object its first relation names). Each
object is placed by its first object relation when the placer can honour it (`on` a desk, `left
of` the bed, ...), else by its layout relation (a wall, a corner, the middle, the ceiling), else
against any wall or free-standing. The scene is then rewritten with what the placer realised, as
the synthetic source does, so the reference layout satisfies every relation the prompt states.
A room with an object that finds no free spot keeps the model's relations and gets no reference
layout; the reason is returned.
"""

from __future__ import annotations

import random
from typing import Any

from stages.core.scene import Scene, SceneObject, layout_elements

from .placer import OPPOSITE, Placed, Placer
from .synthetic import mm, to_idesign

GAP = 300
"""Millimetres between an object and a relation target it need not touch."""
CLEARANCE = 600
EYE_LEVEL = 1500
"""Millimetres: the centre height of wall-hung objects (pictures, shelves, screens)."""


class Unplaceable(Exception):
    """No free spot for an object; the message says which and why."""


def placement_order(scene: Scene) -> list[SceneObject]:
    """Objects with every object their first relation names placed before them."""
    done: dict[str, SceneObject] = {}

    def visit(obj: SceneObject, path: tuple[str, ...]) -> None:
        if obj.id in done:
            return
        if obj.id in path:
            raise Unplaceable(f"relations form a cycle: {' -> '.join((*path, obj.id))}")
        for rel in obj.object_relations[:1]:
            visit(scene.get(rel.object_id), (*path, obj.id))
        done[obj.id] = obj

    for obj in scene.objects:
        visit(obj, ())
    return list(done.values())


def _hang_height(size: tuple[int, int, int], room_z: int) -> int:
    return max(0, min(EYE_LEVEL - size[2] // 2, room_z - size[2])) // 10 * 10


def _by_relation(p: Placer, obj: SceneObject, size: tuple[int, int, int], placed: dict[str, Placed]) -> Placed | None:
    if not obj.object_relations:
        return None
    rel = obj.object_relations[0]
    parent = placed[rel.object_id]
    if rel.preposition == "on":
        return p.on_top(obj.id, obj.id, size, parent)
    if rel.preposition == "above":
        ceiling = any(r.element == "ceiling" for r in obj.layout_relations)
        mount = "wall" if parent.wall and not ceiling else "ceiling"
        return p.above(obj.id, obj.id, size, parent, mount, _hang_height(size, p.Z))
    if rel.preposition == "under":
        return p.under(obj.id, obj.id, size, parent)
    gap = 0 if rel.adjacent else GAP
    return p.beside(obj.id, obj.id, size, parent, rel.preposition, gap, toward=obj.facing == parent.oid)


def _by_layout(p: Placer, obj: SceneObject, size: tuple[int, int, int], rng: random.Random) -> Placed | None:
    walls = rng.sample(list(OPPOSITE), 4)
    z0 = 0 if obj.on_floor else _hang_height(size, p.Z)
    for rel in obj.layout_relations:
        if rel.preposition == "in the corner" and obj.on_floor:
            found = p.in_corner(obj.id, obj.id, size)
        elif rel.element in OPPOSITE:
            found = p.against_wall(obj.id, obj.id, size, [rel.element], z0)
        elif rel.element == "ceiling":
            found = p.on_ceiling(obj.id, obj.id, size)
        else:
            facing = obj.facing if obj.facing in OPPOSITE else None
            found = p.in_middle(obj.id, obj.id, size, CLEARANCE, facing)
        if found is not None:
            return found
    return p.against_wall(obj.id, obj.id, size, walls, z0) or (
        p.in_middle(obj.id, obj.id, size, CLEARANCE, None) if obj.on_floor else None)


def place(scene: Scene) -> list[Placed]:
    """A position for every object (mm boxes), or Unplaceable naming the first that has none."""
    rng = random.Random(f"metaspatial-llm:{scene.room_id}")
    room = (mm(scene.size.x), mm(scene.size.y), mm(scene.size.z))
    p = Placer(room, rng)
    placed: dict[str, Placed] = {}
    for obj in placement_order(scene):
        size = (mm(obj.length), mm(obj.width), mm(obj.height))
        found = _by_relation(p, obj, size, placed) or _by_layout(p, obj, size, rng)
        if found is None:
            raise Unplaceable(f"no free spot for '{obj.id}' ({obj.length:g} x {obj.width:g} x {obj.height:g} m)")
        placed[obj.id] = found
    return [placed[o.id] for o in scene.objects]


def placed_graph(scene: Scene, placed: list[Placed]) -> list[dict[str, Any]]:
    """The scene graph as placed: the model's objects with the placer's relations and positions."""
    graph = [to_idesign(p, obj.style, obj.material) for obj, p in zip(scene.objects, placed, strict=True)]
    return graph + layout_elements(scene.size)
