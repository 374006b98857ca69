"""Dense-CRF refinement of a foreground probability map (DESIGN §4.3, seed 000 §4.6).

A fully connected CRF (Krähenbühl & Koltun 2011, ``pydensecrf``) with two labels, background
and foreground: the unary is the negative log of the given probabilities, a Gaussian
(smoothness) kernel and a bilateral (appearance) kernel pull neighbouring pixels of similar
colour to the same label, so a coarse map, upsampled from a 14×14 patch grid, snaps to the
object's edges. The kernel widths are in pixels of a working image whose long side is
``working_long_side`` (512): the parameters mean the same on every photo size. Inference runs at
a long side of at most ``compute_long_side`` (:data:`COMPUTE_LONG_SIDE`, 256) with the spatial
widths scaled by the same factor, and a photo smaller than that runs at its own size, widths
scaled likewise: the same CRF, since densecrf normalises each kernel (on the synthetic
benchmark's 32-pixel photos both ways give the same mIoU to 0.1 point, at a quarter of the time
of a 128-pixel working image).

Where the time goes (the large view's refined mask of a 1 MP photo, tiny random model, 2 shared
cores): at 512 pixels the CRF was ~90 % of it (lattice construction ~0.6 s, 5 mean-field
iterations ~1.2 s; decoding, upsampling the map and the connected components ~0.2 s together).
Inference at 256 pixels does a quarter of the work, and on the VOC check (a true mask
degraded to 14×14, the photos upscaled to 1 MP) gives the same mean IoU (0.9191 against 0.9194
at 512; 0.9114 before CRF) with 0.2–0.4 % of the pixels differing from the 512-pixel result.

Headless: numpy, OpenCV and pydensecrf only.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax

#: Longest side inference runs at by default (see the module docstring for the measurement).
COMPUTE_LONG_SIDE = 256

#: Probabilities are clipped to [EPS, 1 − EPS] before the log: a confident 0 or 1 in the input
#: must still be correctable by the pairwise terms (−log 1e-5 ≈ 11.5 nats at most).
PROB_EPS = 1e-5


#: Bilateral kernel. DESIGN §4.3 names sxy 80, srgb 13, compat 10 (pydensecrf's example); on the
#: check it also names (a true VOC mask degraded to 14×14 and upsampled) those LOWER the mean
#: IoU, 0.911 → 0.794: an 80-pixel reach at compat 10 outweighs the weak unary in the
#: one-patch-wide uncertain band and pulls dark or many-coloured object parts to background of
#: similar colour. A reach of about half a patch at 512 px (sxy 20) with a tighter colour std
#: raises it on every photo, 0.911 → 0.919; the whole plateau sxy 10–20, srgb 3–5, compat 3–5
#: raises it too (measured; tests/vision/test_crf.py keeps the check). srgb 5 rather than 3:
#: the same gain, and a coarser colour lattice is faster (VOC photo: 440 ms against 660 ms).
BILATERAL_SXY = 20.0
BILATERAL_SRGB = 5.0
BILATERAL_COMPAT = 3.0


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return v


def refine_with_crf(
    image_rgb: np.ndarray,
    prob_hw: np.ndarray,
    *,
    working_long_side: int = 512,
    compute_long_side: int | None = COMPUTE_LONG_SIDE,
    iterations: int = 5,
    gaussian_sxy: float = 3,
    gaussian_compat: float = 3,
    bilateral_sxy: float = BILATERAL_SXY,
    bilateral_srgb: float = BILATERAL_SRGB,
    bilateral_compat: float = BILATERAL_COMPAT,
) -> np.ndarray:
    """Refine a foreground probability map with a two-label dense CRF.

    The photo and the map are downscaled (``cv2.INTER_AREA``) so that the long side is the
    smallest of the photo's, ``working_long_side`` and ``compute_long_side``; mean-field
    inference runs there with the spatial widths (``gaussian_sxy``, ``bilateral_sxy``) scaled
    by that long side over ``working_long_side``, as if the image were at the working size, and
    the foreground marginal is resized back to the photo bilinearly.

    Args:
        image_rgb: (H, W, 3) uint8 photo, channels in R, G, B order.
        prob_hw: (H, W) float foreground probabilities in [0, 1], aligned to the photo.
        working_long_side: long side of the working size in pixels, ≥ 1: the size the
            spatial widths are given for.
        compute_long_side: the most pixels on the long side inference runs at (≥ 1), widths
            scaled to match; None: ``working_long_side``.
        iterations: mean-field iterations, ≥ 1.
        gaussian_sxy: spatial std of the Gaussian kernel, working pixels.
        gaussian_compat: weight of the Gaussian kernel (Potts compatibility).
        bilateral_sxy: spatial std of the bilateral kernel, working pixels.
        bilateral_srgb: colour std of the bilateral kernel, in 0–255 intensity units.
        bilateral_compat: weight of the bilateral kernel (Potts compatibility).

    Returns:
        (H, W) float32 refined foreground probabilities in [0, 1].

    Raises:
        ValueError: bad shapes, dtypes or values of the arrays, or a non-positive parameter.
    """
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image_rgb must have shape (H, W, 3), got {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"image_rgb must be uint8, got dtype {img.dtype}")
    prob = np.asarray(prob_hw)
    if prob.shape != img.shape[:2]:
        raise ValueError(f"prob_hw must have the photo's shape {img.shape[:2]}, got {prob.shape}")
    if prob.dtype.kind != "f":
        raise ValueError(f"prob_hw must be a float array, got dtype {prob.dtype}")
    if not np.all(np.isfinite(prob)) or prob.min() < 0.0 or prob.max() > 1.0:
        raise ValueError("prob_hw must hold finite probabilities in [0, 1]")
    if int(working_long_side) != working_long_side or working_long_side < 1:
        raise ValueError(f"working_long_side must be a positive integer, got {working_long_side!r}")
    if compute_long_side is not None and (
        int(compute_long_side) != compute_long_side or compute_long_side < 1
    ):
        raise ValueError(f"compute_long_side must be a positive integer, got {compute_long_side!r}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    g_sxy = _positive("gaussian_sxy", gaussian_sxy)
    g_compat = _positive("gaussian_compat", gaussian_compat)
    b_sxy = _positive("bilateral_sxy", bilateral_sxy)
    b_srgb = _positive("bilateral_srgb", bilateral_srgb)
    b_compat = _positive("bilateral_compat", bilateral_compat)

    h, w = prob.shape
    prob32: np.ndarray = prob.astype(np.float32)
    limit = int(working_long_side) if compute_long_side is None else int(compute_long_side)
    run_long = min(max(h, w), int(working_long_side), limit)
    scale = run_long / max(h, w)  # photo pixels → pixels inference runs at
    if scale < 1.0:
        ws, hs = max(1, round(w * scale)), max(1, round(h * scale))
        img = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
        prob32 = cv2.resize(prob32, (ws, hs), interpolation=cv2.INTER_AREA)
    else:
        hs, ws = h, w
    # Working pixels → run pixels: widths meant for a 512-pixel image would otherwise span a
    # small photo (a 20-px bilateral reach on a 32-px photo) or a smaller compute size.
    to_run = run_long / int(working_long_side)
    g_sxy, b_sxy = g_sxy * to_run, b_sxy * to_run

    fg = np.clip(prob32, PROB_EPS, 1.0 - PROB_EPS)
    softmax = np.stack([1.0 - fg, fg]).astype(np.float32)  # (2, hs, ws): background, foreground
    unary = np.ascontiguousarray(unary_from_softmax(softmax, clip=PROB_EPS), dtype=np.float32)

    crf = dcrf.DenseCRF2D(ws, hs, 2)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=g_sxy, compat=g_compat)
    # pydensecrf needs a C-contiguous, writable buffer (a Pillow-backed array is read-only).
    rgbim = np.array(img, dtype=np.uint8, order="C", copy=True)
    crf.addPairwiseBilateral(sxy=b_sxy, srgb=b_srgb, rgbim=rgbim, compat=b_compat)
    q = np.asarray(crf.inference(int(iterations)), dtype=np.float32).reshape(2, hs, ws)
    out = q[1]
    if (hs, ws) != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
