"""Training of the small bundled models (``langscene_core/assets``) on the synthetic world.

:mod:`vocabulary` captions and held-out colour x shape combinations, :mod:`crops` rendered training
views and the crops the CLIP encoder sees, :mod:`tiny_clip` the contrastive training and retrieval
evaluation of ``bundled:tiny-clip``.
"""
