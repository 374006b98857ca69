"""Backbone registry: each entry is data (library, weights, preprocessing, token layout).

The registry says *what* a backbone is; ``sketchpad.vision.backbone.create_backbone`` builds
it, and ``sketchpad.vision.weights`` finds its weights. Tiny ``test-*`` variants (2 blocks,
narrow) are registered on purpose, as timm does, so tests run every family offline in seconds;
``list_backbones()`` hides them unless asked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is imported where a model is built
    from torch import nn

Family = Literal["open_clip", "timm", "sketchfusion"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: open_clip's file names in a Hugging Face repo, safest first.
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: timm's file names in a Hugging Face repo, safest first.
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone.

    Attributes:
        id: our name, e.g. ``clip-vit-b16``; also the folder name of imported weights.
        family: which library builds it.
        arch: the library's architecture name (open_clip model name, or timm model name).
        description: one line for ``sketchpad models list`` and the model manager.
        use: what it is for (category-level, fine-grained, fast preview, tests).
        pretrained_tag: the open_clip pretrained tag the weights come from, or the timm tag.
        hf_repo: Hugging Face repo id that holds the weights.
        hf_files: candidate file names in that repo, safest first.
        hf_revision: a pinned revision, or None for the repo's main branch.
        input_size: default square model input side (pixels).
        patch_size: patch side (pixels); the grid is ``input_size // patch_size``.
        width: token width inside the transformer.
        embed_dim: dimension of the features we compare (CLIP joint space, or DINOv2 width).
        depth: number of transformer blocks.
        mean: per-channel normalisation mean (RGB, 0–1 scale).
        std: per-channel normalisation std.
        num_prefix_tokens: tokens before the patch tokens (CLS, registers).
        has_text: whether the backbone has a text tower (CLIP yes, DINOv2 no).
        quick_gelu: open_clip only: the activation the weights were trained with.
        arch_overrides: passed to the builder (tiny variants override width/depth/size).
        download_mb: approximate size of the weights file, for the user.
        testing: a tiny variant for tests, hidden from users.
    """

    id: str
    family: Family
    arch: str
    description: str
    use: str
    pretrained_tag: str
    hf_repo: str
    hf_files: tuple[str, ...]
    input_size: int
    patch_size: int
    width: int
    embed_dim: int
    depth: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_prefix_tokens: int = 1
    has_text: bool = False
    quick_gelu: bool = False
    hf_revision: str | None = None
    arch_overrides: dict[str, Any] = field(default_factory=dict)
    download_mb: int = 0
    testing: bool = False

    def __post_init__(self) -> None:
        if self.input_size % self.patch_size:
            raise ValueError(
                f"{self.id}: input_size {self.input_size} is not a multiple of "
                f"patch_size {self.patch_size}"
            )
        if not self.hf_files:
            raise ValueError(f"{self.id}: hf_files is empty")

    @property
    def gpu_expected(self) -> bool:
        """Whether the backbone is meant for a GPU: on a CPU it works, slowly (SketchFusion's
        UNet pass takes tens of seconds per photo there), and the window says so."""
        return self.family == "sketchfusion"

    @property
    def grid(self) -> int:
        """Patch grid side at the default input size."""
        return self.input_size // self.patch_size

    def preprocess_key(self, input_size: int | None = None) -> str:
        """A string naming everything that changes the photo features apart from the weights:
        part of every feature-cache key."""
        size = input_size or self.input_size
        mean = ",".join(f"{m:.6g}" for m in self.mean)
        std = ",".join(f"{s:.6g}" for s in self.std)
        return f"{self.id}|{self.arch}|{size}|letterbox-centre|bicubic|mean={mean}|std={std}"


_REGISTRY: dict[str, BackboneSpec] = {}
#: ``arch_overrides["embed_layer"]`` value for :class:`sketchpad.vision.stems.ConvStemPatchEmbed`.
CONV_STEM = "sketchpad-conv-stem"
DEFAULT_BACKBONE = "clip-vit-b16"


def register_backbone(spec: BackboneSpec, *, replace: bool = False) -> BackboneSpec:
    """Add ``spec`` to the registry (``replace=True`` to redefine an id)."""
    if spec.id in _REGISTRY and not replace:
        raise ValueError(f"backbone {spec.id!r} is already registered")
    _REGISTRY[spec.id] = spec
    return spec


def get_spec(backbone_id: str) -> BackboneSpec:
    """The registered spec, or a ``KeyError`` that lists the known ids."""
    try:
        return _REGISTRY[backbone_id]
    except KeyError:
        known = ", ".join(s.id for s in list_backbones())
        raise KeyError(f"unknown backbone {backbone_id!r}; known: {known}") from None


def list_backbones(*, include_testing: bool = False) -> list[BackboneSpec]:
    """Registered backbones in registration order (tiny test variants only when asked)."""
    return [s for s in _REGISTRY.values() if include_testing or not s.testing]


def open_clip_config(spec: BackboneSpec) -> dict[str, Any]:
    """The open_clip model config for ``spec``: the library's preset, with the spec's
    overrides merged into ``vision_cfg``/``text_cfg``/top level."""
    if spec.family != "open_clip":
        raise ValueError(f"{spec.id} is not an open_clip backbone")
    import open_clip

    cfg = open_clip.get_model_config(spec.arch)
    if cfg is None:
        raise ValueError(f"open_clip has no model config {spec.arch!r}")
    cfg = copy.deepcopy(cfg)
    for key, value in spec.arch_overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    cfg["quick_gelu"] = spec.quick_gelu
    return cfg


def build_model(spec: BackboneSpec) -> nn.Module:
    """A randomly initialised model of ``spec``'s architecture, in eval mode, on the CPU.

    open_clip: a ``CLIP`` built from the preset config (no download, no weights).
    timm: ``create_model(arch, pretrained=False, dynamic_img_size=True)`` at the checkpoint's
    native size, so real checkpoints load strictly and any multiple of the patch size works.
    """
    if spec.family == "open_clip":
        from open_clip.model import CLIP

        model = CLIP(**open_clip_config(spec))
    elif spec.family == "timm":
        import timm

        kwargs: dict[str, Any] = {"dynamic_img_size": True, "num_classes": 0}
        kwargs.update(spec.arch_overrides)
        if kwargs.get("embed_layer") == CONV_STEM:  # named, so the registry imports no timm
            from sketchpad.vision.stems import ConvStemPatchEmbed

            kwargs["embed_layer"] = ConvStemPatchEmbed
        model = timm.create_model(spec.arch, pretrained=False, **kwargs)
    elif spec.family == "sketchfusion":
        raise ValueError(
            f"{spec.id} is a fused Stable Diffusion + CLIP extractor: it is built by "
            "sketchpad.vision.fusion (create_backbone), not as one library model"
        )
    else:  # pragma: no cover - Literal guards it
        raise ValueError(f"unknown family {spec.family!r}")
    return model.eval()


def _clip(
    id: str, arch: str, repo: str, *, patch: int, width: int, embed: int, depth: int, **kw: Any
) -> BackboneSpec:
    return BackboneSpec(
        id=id,
        family="open_clip",
        arch=arch,
        pretrained_tag="openai",
        hf_repo=repo,
        hf_files=OPEN_CLIP_FILES,
        input_size=224,
        patch_size=patch,
        width=width,
        embed_dim=embed,
        depth=depth,
        mean=OPENAI_MEAN,
        std=OPENAI_STD,
        has_text=True,
        quick_gelu=True,
        **kw,
    )


def _dino(id: str, size: str, *, width: int, depth: int, **kw: Any) -> BackboneSpec:
    arch = f"vit_{size}_patch14_dinov2.lvd142m"
    return BackboneSpec(
        id=id,
        family="timm",
        arch=arch,
        pretrained_tag="lvd142m",
        hf_repo=f"timm/{arch}",
        hf_files=TIMM_FILES,
        input_size=224,
        patch_size=14,
        width=width,
        embed_dim=width,
        depth=depth,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        **kw,
    )


# The openai weights were trained with QuickGELU: the "-quickgelu" names build that activation
# (the plain names build nn.GELU and open_clip only warns).
register_backbone(
    _clip(
        "clip-vit-b16",
        "ViT-B-16-quickgelu",
        "timm/vit_base_patch16_clip_224.openai",
        patch=16,
        width=768,
        embed=512,
        depth=12,
        description="CLIP ViT-B/16 (OpenAI), 14×14 grid at 224",
        use="default: category-level segmentation and scene labelling",
        download_mb=599,
    )
)
register_backbone(
    _clip(
        "clip-vit-b32",
        "ViT-B-32-quickgelu",
        "timm/vit_base_patch32_clip_224.openai",
        patch=32,
        width=768,
        embed=512,
        depth=12,
        description="CLIP ViT-B/32 (OpenAI), 7×7 grid at 224",
        use="fast preview on CPU",
        download_mb=605,
    )
)
register_backbone(
    _clip(
        "clip-vit-l14",
        "ViT-L-14-quickgelu",
        "timm/vit_large_patch14_clip_224.openai",
        patch=14,
        width=1024,
        embed=768,
        depth=24,
        description="CLIP ViT-L/14 (OpenAI), 16×16 grid at 224",
        use="the paper's category-level model (GPU)",
        download_mb=1710,
    )
)
register_backbone(
    _dino(
        "dinov2-vits14",
        "small",
        width=384,
        depth=12,
        description="DINOv2 ViT-S/14 (timm), 16×16 grid at 224",
        use="fine-grained, fast",
        download_mb=88,
    )
)
register_backbone(
    _dino(
        "dinov2-vitb14",
        "base",
        width=768,
        depth=12,
        description="DINOv2 ViT-B/14 (timm), 16×16 grid at 224",
        use="fine-grained",
        download_mb=346,
    )
)
register_backbone(
    _dino(
        "dinov2-vitl14",
        "large",
        width=1024,
        depth=24,
        description="DINOv2 ViT-L/14 (timm), 16×16 grid at 224",
        use="the paper's fine-grained model (GPU)",
        download_mb=1220,
    )
)

# Tiny variants of each family for tests: the real builders and file layouts, 2 blocks, narrow.
register_backbone(
    BackboneSpec(
        id="test-clip-tiny",
        family="open_clip",
        arch="ViT-B-16-quickgelu",
        description="tiny CLIP for tests (2 blocks, width 64, 64 px)",
        use="tests",
        pretrained_tag="openai",
        hf_repo="sketchpad-test/tiny-clip-vit",
        hf_files=OPEN_CLIP_FILES,
        input_size=64,
        patch_size=16,
        width=64,
        embed_dim=32,
        depth=2,
        mean=OPENAI_MEAN,
        std=OPENAI_STD,
        has_text=True,
        quick_gelu=True,
        arch_overrides={
            "embed_dim": 32,
            "vision_cfg": {
                "image_size": 64,
                "layers": 2,
                "width": 64,
                "patch_size": 16,
                "head_width": 32,
            },
            "text_cfg": {"width": 32, "heads": 2, "layers": 2},
        },
        testing=True,
    )
)
register_backbone(
    BackboneSpec(
        id="test-dinov2-tiny",
        family="timm",
        arch="vit_small_patch14_dinov2.lvd142m",
        description="tiny DINOv2 for tests (2 blocks, width 64, 56 px)",
        use="tests",
        pretrained_tag="lvd142m",
        hf_repo="sketchpad-test/tiny-dinov2-vit",
        hf_files=TIMM_FILES,
        input_size=56,
        patch_size=14,
        width=64,
        embed_dim=64,
        depth=2,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        arch_overrides={"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 70},
        testing=True,
    )
)
register_backbone(
    BackboneSpec(
        id="bench-vit-tiny",
        family="timm",
        arch="vit_small_patch14_dinov2.lvd142m",
        description="tiny ViT with a convolutional stem for the synthetic training benchmark "
        "(4 blocks, width 96, 32 px, 8×8 grid)",
        use="sketchpad bench train: a segmenter trained from scratch on CPU",
        pretrained_tag="lvd142m",
        hf_repo="sketchpad-test/bench-vit-tiny",
        hf_files=TIMM_FILES,
        input_size=32,
        patch_size=4,
        width=96,
        embed_dim=96,
        depth=4,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        arch_overrides={
            "embed_dim": 96,
            "depth": 4,
            "num_heads": 3,
            "patch_size": 4,
            "img_size": 32,
            "init_values": None,
            "embed_layer": CONV_STEM,
        },
        testing=True,
    )
)


# SketchFusion (seed 003): Stable Diffusion's UNet features with CLIP's injected, aggregated
# into one dense map (sketchpad.vision.fusion). ``hf_repo``/``hf_files`` name the SD weights
# in diffusers' layout (the first file marks "downloaded"; the rest of the layout is in
# ``fusion.sd.SD_FILES``); the CLIP tower's weights are those of ``arch_overrides["clip"]``.
# mean/std 0.5 map photos to [−1, 1], the VAE's input; the extractor renormalises for CLIP.
# ``patch_size`` is the map's stride in pixels; ``embed_dim`` the aggregator's output.
SD_HALF = (0.5, 0.5, 0.5)


def _fusion(id: str, clip: str, *, sd: str, repo: str, **kw: Any) -> BackboneSpec:
    overrides: dict[str, Any] = {
        "sd": sd,
        "clip": clip,
        "timestep": 261,
        "out_dim": 384,
        "clip_size": 224,
    }
    overrides.update(kw.pop("arch_overrides", {}))
    return BackboneSpec(
        id=id,
        family="sketchfusion",
        arch=f"{sd}+{clip}",
        pretrained_tag="diffusers",
        hf_repo=repo,
        hf_files=("unet/diffusion_pytorch_model.safetensors",),
        input_size=kw.pop("input_size", 512),
        patch_size=kw.pop("patch_size", 16),
        width=int(overrides["out_dim"]),
        embed_dim=int(overrides["out_dim"]),
        depth=0,
        mean=SD_HALF,
        std=SD_HALF,
        num_prefix_tokens=0,
        arch_overrides=overrides,
        **kw,
    )


register_backbone(
    _fusion(
        "sketchfusion-sd21-l14",
        "clip-vit-l14",
        sd="sd21-base",
        repo="stabilityai/stable-diffusion-2-1-base",
        description="SketchFusion: SD 2.1 UNet + CLIP ViT-L/14 injected, 32×32 map at 512",
        use="the paper's dense model: segmentation, correspondence (GPU; slow on CPU)",
        download_mb=5200,
    )
)
register_backbone(
    _fusion(
        "sketchfusion-sd21-b16",
        "clip-vit-b16",
        sd="sd21-base",
        repo="stabilityai/stable-diffusion-2-1-base",
        description="SketchFusion: SD 2.1 UNet + CLIP ViT-B/16 injected, 32×32 map at 512",
        use="the paper's smaller pairing (Table 6: −2.6 PCK@5 against ViT-L/14)",
        download_mb=4100,
    )
)
register_backbone(
    _fusion(
        "test-sketchfusion-tiny",
        "test-clip-tiny",
        sd="test-sd-tiny",
        repo="sketchpad-test/tiny-stable-diffusion",
        description="tiny SD + tiny CLIP for tests (64 px, 4×4 map)",
        use="tests",
        input_size=64,
        patch_size=16,
        arch_overrides={"timestep": 10, "out_dim": 16, "clip_size": 64},
        testing=True,
    )
)
