"""Which backbones have weights here, looked up on the disk only (no network).

The window, ``sketchpad segment`` and ``sketchpad label`` default to the first CLIP backbone
that is installed, so a user who has only ViT-B/32 gets ViT-B/32 everywhere rather than a
"missing weights" error for ViT-B/16.
"""

from __future__ import annotations

from collections.abc import Sequence

#: CLIP backbones for category-level search and scene labelling, preferred first.
CLIP_BACKBONES = ("clip-vit-b16", "clip-vit-b32", "clip-vit-l14")
#: DINOv2 backbones for fine-grained search, preferred first.
DINO_BACKBONES = ("dinov2-vitb14", "dinov2-vits14", "dinov2-vitl14")


def has_weights(backbone_id: str) -> bool:
    """Whether ``backbone_id``'s weights are imported or in the Hugging Face cache (unknown
    ids: False). Reads the disk only."""
    from sketchpad.vision.registry import get_spec
    from sketchpad.vision.weights import describe_locations

    try:
        spec = get_spec(backbone_id)
    except KeyError:
        return False
    return any(ok for src, _, ok in describe_locations(spec) if src != "download")


def first_installed(candidates: Sequence[str], default: str | None = None) -> str:
    """The first of ``candidates`` with weights here; ``default`` (or the first candidate)
    when none has."""
    if not candidates:
        raise ValueError("no candidate backbones")
    for backbone_id in candidates:
        if has_weights(backbone_id):
            return backbone_id
    return default if default is not None else candidates[0]


def default_clip_backbone() -> str:
    """The CLIP backbone to use when none is named: the first installed of
    :data:`CLIP_BACKBONES`, else ``clip-vit-b16`` (which then says how to get weights)."""
    return first_installed(CLIP_BACKBONES)
