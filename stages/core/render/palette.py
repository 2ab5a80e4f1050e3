"""Object categories and their colours, shared by the 3D views and the 2D plan.

An object's category comes from its id (`dining_chair_2` -> `dining_chair` -> kind `chair`), so a
picture needs nothing beyond the scene graph. Each kind has one readable colour, chosen so that
neighbouring furniture (a bed and its nightstand, a desk and its chair) stay distinguishable both in
colour and in grey, and the same colour is used in every view and in the plan's legend.
"""

from __future__ import annotations

import re

RGB = tuple[int, int, int]

# kind -> colour (sRGB). Muted, mid-light tones: they survive the shading of the 3D views and
# keep dark label text readable on the plan.
KIND_COLOURS: dict[str, RGB] = {
    "bed": (96, 140, 200),
    "sofa": (214, 120, 86),
    "armchair": (226, 150, 96),
    "chair": (232, 176, 72),
    "stool": (222, 190, 110),
    "table": (170, 120, 78),
    "desk": (150, 108, 72),
    "cabinet": (186, 160, 124),
    "shelf": (140, 112, 150),
    "wardrobe": (120, 130, 160),
    "appliance": (150, 160, 170),
    "screen": (70, 78, 92),
    "lamp": (244, 210, 90),
    "ceiling_light": (250, 226, 140),
    "plant": (96, 168, 88),
    "rug": (176, 110, 140),
    "mat": (92, 160, 168),
    "wall_art": (206, 96, 120),
    "mirror": (150, 196, 214),
    "bath": (200, 222, 232),
    "toilet": (232, 236, 240),
    "fitness": (70, 150, 140),
    "decor": (200, 140, 190),
    "box": (160, 160, 150),
}

# Checked in order: the first kind whose pattern matches the category name wins. Specific names
# come before the generic words they contain ("desk_lamp" is a lamp, not a desk).
KIND_PATTERNS: list[tuple[str, str]] = [
    ("ceiling_light", r"ceiling light|chandelier|pendant"),
    ("lamp", r"lamp|lantern|sconce"),
    ("cabinet", r"tv stand|media console|tv cabinet"),
    ("screen", r"\btv\b|television|monitor|screen|computer"),
    ("mirror", r"mirror"),
    ("wall_art", r"painting|picture|poster|artwork|clock|whiteboard|menu board|dartboard|canvas|\bframe"),
    ("rug", r"\brug\b|carpet"),
    ("mat", r"\bmat\b"),
    ("plant", r"plant|tree|flower|cactus"),
    ("bed", r"\bbed\b|crib|bunk"),
    ("sofa", r"sofa|couch|loveseat|sectional"),
    ("armchair", r"armchair|reading chair|recliner|bean bag|lounge"),
    ("stool", r"stool|ottoman|pouf"),
    ("chair", r"chair|\bseat\b"),
    ("fitness", r"treadmill|bike|weight|exercise|elliptical|rowing"),
    ("desk", r"\bdesk\b|workstation|vanity"),
    ("wardrobe", r"wardrobe|closet|armoire|refrigerator|fridge|pantry"),
    ("shelf", r"shelf|shelves|bookcase|ladder|rack"),
    ("bath", r"bathtub|\btub\b|shower|sink|basin"),
    ("toilet", r"toilet|bidet"),
    ("table", r"table|counter|island|bench"),
    ("appliance", r"stove|oven|microwave|coffee|espresso|printer|hood|washer|washing machine|dryer|fireplace|"
                  r"dispenser|cash register"),
    ("cabinet", r"cabinet|dresser|drawer|nightstand|sideboard|chest|stand|case|cupboard|buffet|basket|cart|"
                r"piano"),
    ("decor", r"vase|bowl|globe|book|sculpture|tower|toy|statue|pillow|cushion|easel|tent"),
]
_COMPILED = [(kind, re.compile(pattern)) for kind, pattern in KIND_PATTERNS]


def category_of(object_id: str) -> str:
    """`dining_chair_2` -> `dining_chair`: the id without its trailing instance number."""
    return re.sub(r"[_\s-]*\d+$", "", object_id.strip().lower()) or object_id.lower()


def kind_of(object_id: str) -> str:
    """The drawing kind of an object (one of KIND_COLOURS), from the words of its category."""
    words = " ".join(re.split(r"[_\s-]+", category_of(object_id)))
    for kind, pattern in _COMPILED:
        if pattern.search(words):
            return kind
    return "box"


def shade(colour: RGB, factor: float) -> RGB:
    """The colour scaled towards black (factor < 1) or white (factor > 1)."""
    if factor <= 1:
        return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]
    t = min(factor - 1, 1.0)
    return tuple(int(c + (255 - c) * t) for c in colour)  # type: ignore[return-value]
