"""Write the example room set: the first N synthetic rooms of a seed, one JSON object a line, in the
format the `jsonl` source reads ({room_id, description, room_type, preference, room_size, scene_graph},
with reference positions). Run from the repository root:

    python examples/rooms/make_rooms.py --num-rooms 50 --seed 0 --output examples/rooms/rooms.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stages.gen_prompts.synthetic import make_room


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-rooms", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("rooms.jsonl"))
    args = parser.parse_args()
    with open(args.output, "w", encoding="utf-8") as fh:
        for i in range(args.num_rooms):
            fh.write(json.dumps(make_room(args.seed, i), ensure_ascii=False) + "\n")
    print(f"wrote {args.num_rooms} rooms to {args.output}")


if __name__ == "__main__":
    main()
