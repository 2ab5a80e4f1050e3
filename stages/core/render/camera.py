"""Views of a room: where the camera stands for each named view, fitted so the room fills the frame.

Perspective views look down on the room from outside one side or corner, like a doll's house:
the walls nearest the camera are left out so nothing hides the furniture. The camera distance is
solved exactly so that every point that must be seen (the room's box and the drawn objects) lands
inside the frame with a small margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# view name -> horizontal direction from the room towards the camera (x east, y north)
DIRECTIONS = {
    "perspective": (0.0, -1.0),
    "corner-sw": (-1.0, -1.0),
    "corner-se": (1.0, -1.0),
    "corner-ne": (1.0, 1.0),
    "corner-nw": (-1.0, 1.0),
}
PLAN_VIEWS = ("topdown",)
VIEWS = PLAN_VIEWS + tuple(DIRECTIONS)
ELEVATION_DEG = {"perspective": 50.0}
DEFAULT_ELEVATION_DEG = 42.0
FOV_DEG = 40.0
MARGIN = 0.92  # share of the half-frame the fitted points may use


@dataclass
class Camera:
    pose: np.ndarray  # 4x4 camera-to-world; the camera looks along its -z axis, +y up (OpenGL)
    yfov: float  # radians
    znear: float
    zfar: float
    eye: np.ndarray
    target: np.ndarray

    def project(self, points: np.ndarray, pixels: int) -> np.ndarray:
        """Pixel coordinates (column, row) of world points; rows grow downwards."""
        view = np.linalg.inv(self.pose)
        p = np.c_[points, np.ones(len(points))] @ view.T
        depth = np.maximum(-p[:, 2], 1e-6)
        t = math.tan(self.yfov / 2)
        ndc = p[:, :2] / (depth[:, None] * t)
        return np.c_[(ndc[:, 0] + 1) * pixels / 2, (1 - ndc[:, 1]) * pixels / 2]


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right = right / np.linalg.norm(right)
    up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


def hidden_walls(view: str) -> set[str]:
    """The walls between the camera and the room, left out of that view."""
    dx, dy = DIRECTIONS[view]
    walls = set()
    if dx < 0:
        walls.add("west_wall")
    if dx > 0:
        walls.add("east_wall")
    if dy < 0:
        walls.add("south_wall")
    if dy > 0:
        walls.add("north_wall")
    return walls


def fit_camera(view: str, points: np.ndarray) -> Camera:
    """A camera for `view` that sees all `points` (N x 3, world metres)."""
    dx, dy = DIRECTIONS[view]
    elevation = math.radians(ELEVATION_DEG.get(view, DEFAULT_ELEVATION_DEG))
    horizontal = np.array([dx, dy]) / math.hypot(dx, dy)
    back = np.array([horizontal[0] * math.cos(elevation), horizontal[1] * math.cos(elevation), math.sin(elevation)])
    lo, hi = points.min(axis=0), points.max(axis=0)
    target = (lo + hi) / 2
    yfov = math.radians(FOV_DEG)
    reach = MARGIN * math.tan(yfov / 2)
    for _ in range(3):  # distance exactly; then re-centre once on what the frame shows, refit
        radius = float(np.linalg.norm(hi - lo)) / 2 + 1e-3
        eye = target + back * radius * 4
        view_pts = _to_view(look_at(eye, target), points)
        needed = np.abs(view_pts[:, :2]).max(axis=1) / reach + view_pts[:, 2]  # extra distance per point
        eye = eye + back * float(needed.max())
        pose = look_at(eye, target)
        view_pts = _to_view(pose, points)
        ndc = view_pts[:, :2] / (-view_pts[:, 2:3])
        shift = (ndc.min(axis=0) + ndc.max(axis=0)) / 2 * float(np.median(-view_pts[:, 2]))
        if np.abs(shift).max() < 1e-3:
            break
        target = target + pose[:3, 0] * shift[0] + pose[:3, 1] * shift[1]
    depth = -_to_view(pose, points)[:, 2]
    # Clip planes hug what must be seen: a tight depth range keeps the depth buffer precise.
    return Camera(pose, yfov, max(1e-3, float(depth.min()) * 0.5), float(depth.max()) * 1.5, eye, target)


def _to_view(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (np.c_[points, np.ones(len(points))] @ np.linalg.inv(pose).T)[:, :3]
