"""A queryable scene of a small synthetic world for tests without a reconstruction: the world's surfaces
as a reconstruction gives them (reconstructed_world.py), each Gaussian carrying the bundled LQC latent of
its object's name ('table' for the table), so the bundled models answer queries by name on it."""

from __future__ import annotations

import numpy as np
import torch
from reconstructed_world import reconstruct_like

from langscene_core.field.gaussians import Gaussians
from langscene_core.language.clip import encode_text
from langscene_core.reconstruction.scene import build_scene

SPEC = {
    "objects": [
        {"name": "red box", "shape": "box", "color": "red", "size": 0.07, "position": [0.1, 0.0]},
        {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.06, "position": [-0.12, 0.08]},
    ]
}


def make_scene(world, models, frame_id: str = "map", lqc_checkpoint: str = "bundled:tiny-lqc"):
    """A Scene on ``world``'s surfaces whose Gaussians carry, at every level, the LQC latent of their
    object's name ('table' for the table)."""
    points = reconstruct_like(world)
    names = ["table", *(o.name for o in world.spec.objects)]
    with torch.no_grad():
        latents = models.lqc.encode(encode_text(models.clip, names).to(models.device)).cpu()  # [O + 1, 3]
        gaussians = Gaussians.from_points(points.means, np.full_like(points.means, 0.5), points.normals)
        gaussians.params["latents"][:] = latents[torch.from_numpy(points.owner)][:, None, :]
    return build_scene(gaussians, models.lqc, frame_id, {"lqc": lqc_checkpoint})
