"""The shared render engine: scene + layout -> pictures (a 2D plan and 3D views).

Used by the `render` stage, by `gen-prompts` (empty-room images) and by `report`. Importing this
package is cheap; pyrender/OpenGL, trimesh and open3d are imported only when a picture is drawn.

    from stages.core.render import Arrangement, Renderer
    arr = Arrangement.from_scene(scene, placements, omitted=parsed.missing, error=parsed.error)
    images = Renderer(512).render(arr, ["topdown", "perspective", "corner-ne"])
"""

from .camera import VIEWS
from .engine import Renderer, check_views
from .layout import Arrangement, Item

__all__ = ["VIEWS", "Arrangement", "Item", "Renderer", "check_views"]
