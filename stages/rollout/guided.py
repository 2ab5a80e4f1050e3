"""Guided decoding: a per-row grammar for the whole `<think>…</think><answer>[…]</answer>` response.

The reasoning stays free text (any characters but `<`, up to a budget, so even a model that never
closes its thoughts reaches the answer); the answer is the row's layout JSON with every object of
the room exactly once, in the order of the scene (a context-free grammar cannot say "each id once
in any order" without listing permutations, and a fixed order costs the model nothing), each centre
inside the room (0 <= x <= room_x, 0 <= y <= room_y, 0 <= z <= room_z, up to 3 decimals).

The grammar is xgrammar EBNF: the transformers backend compiles it with xgrammar, vLLM takes it as
`structured_outputs.grammar` (its xgrammar backend), a vLLM server as `extra_body`.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from stages.core.scene import Scene


def ebnf_literal(text: str) -> str:
    """`text` as an EBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def bounded_number(upper: float) -> str:
    """EBNF for decimals in [0, upper] with at most 3 decimals, exact to 0.1 at the top end."""
    whole = math.floor(upper + 1e-9)
    tenth = min(9, int(round((upper - whole) * 10, 6)))
    alts = []
    if whole > 0:
        digits = " | ".join(f'"{i}"' for i in range(whole))
        alts.append(f'({digits}) ("." [0-9] [0-9]? [0-9]?)?')
    top = f'"." "{tenth}" "0"? "0"?'  # exactly whole.tenth, trailing zeros allowed
    if tenth == 0:
        alts.append(f'"{whole}" ({top})?')
    else:
        alts.append(f'"{whole}" ("." [0-{tenth - 1}] [0-9]? [0-9]? | {top})?')
    return " | ".join(alts)


@lru_cache(maxsize=4096)
def layout_grammar(ids: tuple[str, ...], room: tuple[float, float, float], think_chars: int) -> str:
    """The EBNF of one row's response (cached: all samples of a row share it)."""
    x, y, z = room
    rules = [
        'root ::= "<think>" think "</think>\\n<answer>" layout "</answer>"',
        f"think ::= [^<]{{0,{think_chars}}}",
        'layout ::= "[" ' + ' ", " '.join(f"obj{i}" for i in range(len(ids))) + ' "]"',
        f"numx ::= {bounded_number(x)}",
        f"numy ::= {bounded_number(y)}",
        f"numz ::= {bounded_number(z)}",
    ]
    for i, oid in enumerate(ids):
        head = ebnf_literal('{"new_object_id": ' + json.dumps(oid) + ', "x": ')
        rules.append(f'obj{i} ::= {head} numx ", \\"y\\": " numy ", \\"z\\": " numz "}}"')
    return "\n".join(rules) + "\n"


def row_grammar(row: dict[str, Any], think_chars: int, where: str) -> str:
    """The grammar for an input row (its scene and room size, decoded by `Scene.from_row`)."""
    scene = Scene.from_row(row, where)
    return layout_grammar(tuple(scene.ids), (float(scene.size.x), float(scene.size.y), float(scene.size.z)),
                          think_chars)
