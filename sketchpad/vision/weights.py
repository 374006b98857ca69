"""Find, check and load a backbone's weights (DESIGN §4.1).

Resolution order: a file or folder the user gave; weights imported earlier
(``data_dir()/weights/<id>/``); the Hugging Face cache, looked up offline; a download, only
when online. Nothing found raises :class:`WeightsNotFoundError`, which names every place
looked at and how to import a file. Only safetensors and plain tensor checkpoints
(``torch.load(..., weights_only=True)``) are read, keys and shapes must match the model
exactly, and every file's SHA-256 is recorded (it is part of every feature-cache key).

The Hugging Face side (cache folder, endpoint, offline switch, download) lives in
:mod:`sketchpad.vision.hub`; its public names are re-exported here. torch and timm are
imported inside the functions that need them, so ``sketchpad models list`` answers without
loading torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sketchpad import paths
from sketchpad.atomic import SaveError, atomic_write_text
from sketchpad.vision import hub
from sketchpad.vision.errors import WeightsError as WeightsError
from sketchpad.vision.errors import WeightsNotFoundError as WeightsNotFoundError
from sketchpad.vision.hub import HUB_TIMEOUT_S as HUB_TIMEOUT_S
from sketchpad.vision.hub import ProgressFn as ProgressFn
from sketchpad.vision.hub import hf_cache_dir as hf_cache_dir
from sketchpad.vision.hub import hf_endpoint as hf_endpoint
from sketchpad.vision.hub import is_offline as is_offline
from sketchpad.vision.hub import short_reason as _reason
from sketchpad.vision.registry import BackboneSpec, build_model

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Source = Literal["given", "imported", "hf-cache", "download"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SHA_MEMO = "weights-sha256.json"
_IMPORT_RECORD = "import-record.json"
_CHUNK = 8 << 20
#: How each :data:`Source` is named to the user.
PLACE_LABELS: dict[str, str] = {
    "given": "given",
    "imported": "imported",
    "hf-cache": "Hugging Face cache",
    "download": "download",
}


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file that was found, where it came from, and its SHA-256 (hex)."""

    path: Path
    source: Source
    sha256: str


def imported_dir(spec: BackboneSpec) -> Path:
    """The folder that holds the weights imported for ``spec`` (not created here)."""
    return paths.data_dir() / "weights" / spec.id


# --- where weights can be -------------------------------------------------------------------


def _file_in(spec: BackboneSpec, path: Path) -> Path:
    """``path`` itself if it is a file, or the first of ``spec.hf_files`` inside a folder."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in spec.hf_files:
            if (path / name).is_file():
                return path / name
        raise WeightsError(path, f"is a folder without any of {', '.join(spec.hf_files)}")
    raise WeightsError(path, "does not exist")


def _imported_file(spec: BackboneSpec) -> Path | None:
    folder = imported_dir(spec)
    if not folder.is_dir():
        return None
    if spec.family == "sketchfusion":  # a diffusers folder: its UNet file stands for it
        unet = folder / spec.hf_files[0]
        return unet if unet.is_file() else None
    files = [
        p
        for p in folder.iterdir()
        if p.suffix in WEIGHT_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return max(files, key=lambda p: p.stat().st_mtime_ns, default=None)


def describe_locations(
    spec: BackboneSpec, given: str | Path | None = None
) -> list[tuple[str, Path | str, bool]]:
    """Every place :func:`resolve_weights` looks at, in order, and whether weights are there.

    Returns:
        ``(source, place, found)`` tuples; ``source`` is a :data:`Source` value. ``place`` is
        the file when found, else the folder or URL looked at. The download entry is never
        "found" (it is a place to fetch from).
    """
    out: list[tuple[str, Path | str, bool]] = []
    if given is not None:
        try:
            out.append(("given", _file_in(spec, Path(given).expanduser()), True))
        except WeightsError:
            out.append(("given", Path(given), False))
    imported = _imported_file(spec)
    out.append(("imported", imported or imported_dir(spec), imported is not None))
    cached = hub.hf_cached(spec)
    out.append(("hf-cache", cached or hub.hf_repo_folder(spec), cached is not None))
    files = " or ".join(spec.hf_files)
    out.append(("download", f"{hub.download_url(spec)} ({files}; online only)", False))
    return out


def resolve_weights(
    spec: BackboneSpec,
    given: str | Path | None = None,
    *,
    offline: bool | None = None,
    progress: ProgressFn | None = None,
) -> ResolvedWeights:
    """Find ``spec``'s weights (order in the module docstring), downloading only when online.

    Args:
        spec: the backbone.
        given: a file, or a folder holding one of ``spec.hf_files``; it wins over the rest.
        offline: never touch the network; ``None`` reads ``HF_HUB_OFFLINE``/``SKETCHPAD_OFFLINE``.
        progress: called with (bytes done, total or None) while downloading.

    Raises:
        WeightsError: ``given`` does not exist (or is a folder without weights).
        WeightsNotFoundError: nothing found locally and no download possible; offline it is
            raised at once, without any network attempt.
    """
    if spec.family == "sketchfusion":  # a diffusers folder: every file of its layout
        from sketchpad.vision.fusion.sd import UNET_WEIGHTS, resolve_sd

        sd = resolve_sd(spec, given, offline=offline, progress=progress)
        return ResolvedWeights(sd.folder / UNET_WEIGHTS, sd.source, sd.sha256)  # type: ignore[arg-type]
    if given is not None:
        path = _file_in(spec, Path(given).expanduser())
        return ResolvedWeights(path, "given", file_sha256(path))
    imported = _imported_file(spec)
    if imported is not None:
        return ResolvedWeights(imported, "imported", file_sha256(imported))
    cached = hub.hf_cached(spec)
    if cached is not None:
        return ResolvedWeights(cached, "hf-cache", file_sha256(cached))
    if is_offline(offline):
        reason = "not tried: offline (HF_HUB_OFFLINE or SKETCHPAD_OFFLINE is set, or offline=True)"
    else:
        try:
            path = hub.download(spec, progress)
        except hub.DownloadFailed as e:
            reason = f"failed: {e}"
        else:
            return ResolvedWeights(path, "download", file_sha256(path))
    looked = [f"{PLACE_LABELS[src]}: {place}" for src, place, _ in describe_locations(spec)]
    raise WeightsNotFoundError(spec.id, looked, reason)


# --- SHA-256 with a memo ----------------------------------------------------------------------


def _memo_path() -> Path:
    return paths.cache_dir() / _SHA_MEMO


def _read_memo() -> dict[str, Any]:
    try:
        data = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_sha256(real: Path, st: os.stat_result, digest: str) -> None:
    memo = {k: v for k, v in _read_memo().items() if os.path.exists(k)}
    memo[str(real)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    try:
        atomic_write_text(_memo_path(), json.dumps(memo, indent=1, sort_keys=True))
    except SaveError as e:  # only a memo: the next start hashes again
        log.warning("could not record the weights' SHA-256: %s", e)


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (hex), memoised in ``cache_dir()`` by real path, size and mtime.

    Raises:
        WeightsError: the file cannot be read.
    """
    try:
        real = Path(path).resolve(strict=True)
        st = real.stat()
        entry = _read_memo().get(str(real))
        if (
            isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and isinstance(entry.get("sha256"), str)
        ):
            return entry["sha256"]
        h = hashlib.sha256()
        with open(real, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise WeightsError(path, f"cannot be read ({e.strerror or e})") from e
    _remember_sha256(real, st, h.hexdigest())
    return h.hexdigest()


# --- reading and loading ----------------------------------------------------------------------


def _looks_like_safetensors(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and int.from_bytes(head[:8], "little") < 1 << 30 and head[8:] == b"{"


def _load_torch(path: Path) -> Any:
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # we refuse TorchScript below; no "dispatching" note
            warnings.filterwarnings("ignore", "'torch.load' received a zip file", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            detail = str(e).split("Unsupported global:")[-1].split(" was not")[0].strip()
            raise WeightsError(
                path,
                "refused: the checkpoint contains Python objects other than tensors "
                f"(possibly malicious: {detail}); only safetensors or plain tensor checkpoints "
                "are loaded",
            ) from e
        reason = f"not a PyTorch checkpoint, or corrupt ({_reason(e)})"
        if _looks_like_safetensors(path):
            reason += "; it looks like a safetensors file: rename it to .safetensors"
        raise WeightsError(path, reason) from e
    except RuntimeError as e:
        if "TorchScript" in str(e):
            raise WeightsError(
                path,
                "is a TorchScript archive (a compiled model, e.g. OpenAI's original CLIP .pt), "
                "not a state dict: use the safetensors file from the model's Hugging Face repo",
            ) from e
        raise WeightsError(path, f"truncated or corrupt PyTorch checkpoint ({_reason(e)})") from e
    except (EOFError, KeyError, ValueError, TypeError) as e:
        raise WeightsError(path, f"truncated, corrupt or not a checkpoint ({_reason(e)})") from e


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a plain tensor checkpoint (``.bin/.pt/.pth``).

    ``{"state_dict": ...}`` and ``{"model": ...}`` wrappers are unwrapped and a ``module.``
    prefix (DataParallel) is stripped. Pickles are read with ``weights_only=True`` only.

    Raises:
        WeightsError: missing file, unknown extension, code in a pickle, a truncated or
            corrupt file, a TorchScript archive, or a payload that is not names → tensors.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "is a folder, not a file" if path.is_dir() else "does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            data: Any = load_file(path, device="cpu")
        except Exception as e:  # SafetensorError is not exported under a stable name
            raise WeightsError(path, f"truncated or corrupt safetensors file ({e})") from e
    elif suffix in WEIGHT_SUFFIXES:
        data = _load_torch(path)
    else:
        raise WeightsError(
            path, f"unknown extension {suffix or '(none)'!r}: expected {', '.join(WEIGHT_SUFFIXES)}"
        )
    for _ in range(3):  # {"state_dict": {"model": ...}} and the like
        for key in ("state_dict", "model"):
            if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
                data = data[key]
                break
        else:
            break
    if not isinstance(data, Mapping):
        raise WeightsError(
            path, f"holds a {type(data).__name__}, not a state dict (names → tensors)"
        )
    bad = [k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(
            path, f"is not a state dict: {len(bad)} entries are not tensors, e.g. {bad[:3]}"
        )
    if data and all(k.startswith("module.") for k in data):
        return {k[len("module.") :]: v for k, v in data.items()}
    return dict(data)


def _convert(
    sd: dict[str, torch.Tensor], model: Any, spec: BackboneSpec, path: Path
) -> dict[str, torch.Tensor]:
    if spec.family == "timm":
        from timm.models.vision_transformer import checkpoint_filter_fn

        try:  # Meta's DINOv2 layout → timm's; pos_embed resampled to the model's grid
            return checkpoint_filter_fn(sd, model)
        except Exception as e:  # noqa: BLE001 - a foreign layout can fail anywhere inside
            raise WeightsError(path, f"cannot be converted for {spec.id} ({_reason(e)})") from e
    for key in ("input_resolution", "context_length", "vocab_size"):  # OpenAI's extra entries
        sd.pop(key, None)
    return sd


def load_weights(model: torch.nn.Module, spec: BackboneSpec, path: Path) -> None:
    """Load ``path`` into ``model`` (built by ``build_model(spec)``), strictly.

    Keys and shapes are compared before the model is touched: on any mismatch the model is
    left exactly as it was.

    Raises:
        WeightsError: the file cannot be read (see :func:`read_state_dict`) or does not fit.
    """
    path = Path(path)
    sd = _convert(read_state_dict(path), model, spec, path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k}: file {list(sd[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:

        def few(items: list[str]) -> str:
            return f" ({', '.join(items[:4])}{', …' if len(items) > 4 else ''})" if items else ""

        raise WeightsError(
            path,
            f"does not fit {spec.id} ({spec.arch}): {len(missing)} missing keys{few(missing)}, "
            f"{len(unexpected)} unexpected{few(unexpected)}, {len(mismatched)} shape "
            f"mismatches{few(mismatched)} — is it the weights of another model? "
            f"{spec.id} expects {' or '.join(spec.hf_files)} from {spec.hf_repo}",
        )
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise WeightsError(path, f"could not be loaded into {spec.id} ({_reason(e)})") from e


def import_weights(spec: BackboneSpec, source: Path) -> ResolvedWeights:
    """Check ``source`` against ``spec`` and keep a copy in ``data_dir()/weights/<id>/``.

    The file is loaded into a fresh ``build_model(spec)`` first, so a wrong file is refused
    before anything is copied. The copy is atomic, replaces earlier imports for ``spec`` and
    has its SHA-256 recorded; a ``<name>.json`` metadata sidecar travels with it, so an
    imported segmenter checkpoint of ours keeps its calibration (``sketchpad_fine_tuned``,
    ``tau``: :mod:`sketchpad.vision.checkpoints`). Any of a checkpoint's three files may be
    given; its weights are imported.

    Raises:
        WeightsError: the file does not exist, cannot be read, does not fit, is a checkpoint
            of another backbone or of another kind than a segmenter, or the copy failed.
    """
    if spec.family == "sketchfusion":  # a Stable Diffusion folder in diffusers' layout
        from sketchpad.vision.fusion.sd import UNET_WEIGHTS, import_sd

        sd = import_sd(spec, Path(source))
        return ResolvedWeights(sd.folder / UNET_WEIGHTS, "imported", sd.sha256)
    src = _checked_source(spec, Path(source).expanduser())
    load_weights(build_model(spec), spec, src)
    folder = imported_dir(spec)
    target = folder / src.name
    sidecar = src.with_suffix(".json")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        digest = _copy_atomically(src, target)
        keep = {target.name, _IMPORT_RECORD}
        if sidecar.is_file():
            _copy_atomically(sidecar, target.with_suffix(".json"))
            keep.add(target.with_suffix(".json").name)
        for old in folder.iterdir():  # one imported file per backbone
            if old.name not in keep and not old.name.startswith(".") and old.is_file():
                old.unlink()
        record = {"file": target.name, "source": str(src.resolve()), "sha256": digest}
        atomic_write_text(folder / _IMPORT_RECORD, json.dumps(record, indent=1))
    except OSError as e:
        raise WeightsError(target, f"could not copy {src} there ({e.strerror or e})") from e
    _remember_sha256(target.resolve(), target.stat(), digest)
    return ResolvedWeights(target, "imported", digest)


def _checked_source(spec: BackboneSpec, source: Path) -> Path:
    """The weights file to import for ``source``: a checkpoint of ours (any of its files) is
    refused unless it is a segmenter checkpoint of ``spec``; else as :func:`_file_in`."""
    from sketchpad.vision import checkpoints

    meta = checkpoints.sidecar_metadata(source) if not source.is_dir() else None
    if meta is None:
        return _file_in(spec, source)
    weights, meta_path = checkpoints.checkpoint_files(source)
    fields = checkpoints.parse_segmenter_metadata(meta, meta_path)
    if fields["backbone_id"] != spec.id:
        raise WeightsError(
            source,
            f"is a segmenter checkpoint of {fields['backbone_id']}, not of {spec.id}: import "
            f"it for {fields['backbone_id']}",
        )
    if not weights.is_file():
        raise WeightsError(weights, "no such checkpoint weights file (next to its JSON)")
    return weights


def _copy_atomically(src: Path, target: Path) -> str:
    """Copy through a temporary file beside ``target`` and ``os.replace``; return the SHA-256."""
    h = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                h.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return h.hexdigest()
