"""The warm-up's answers look exactly like guided rollouts, so the model learns the format it samples in."""

import json

from metaspatial_cli.pretrain import answer_text
from stages.core.answer import VALID, parse_answer


def test_answer_text_is_a_valid_rounded_answer():
    text = answer_text({"bed_1": [2.04, 1.26, 0.3], "lamp_1": [0.5, 3.0, 1.449]}, decimals=1)
    parsed = parse_answer(text, ["bed_1", "lamp_1"])
    assert parsed.format_level == VALID
    assert parsed.placements == {"bed_1": (2.0, 1.3, 0.3), "lamp_1": (0.5, 3.0, 1.4)}
    body = text.split("<answer>")[1].split("</answer>")[0]
    assert json.loads(body)[0] == {"new_object_id": "bed_1", "x": 2.0, "y": 1.3, "z": 0.3}
    assert text.startswith("<think></think>\n<answer>[{\"new_object_id\": \"bed_1\", \"x\": 2.0")
