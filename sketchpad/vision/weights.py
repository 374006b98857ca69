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
import io
import json
import logging
import os
import pickletools
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

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


def not_a_file_reason(path: Path) -> str | None:
    """Why ``path`` is not a regular file that can be read as weights, or None if it is one.

    Only ``stat``/``lstat`` are used: a FIFO or a device is never opened (reading a FIFO
    blocks, ``/dev/zero`` never ends).
    """
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be looked at ({e.strerror or e})"
    link = ""
    if stat.S_ISLNK(lst.st_mode):
        try:
            link = f"is a link to {os.readlink(path)}, which "
        except OSError:
            link = "is a link, which "
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{link}does not exist (a dangling link)" if link else "does not exist"
    except OSError as e:
        return f"{link}cannot be looked at ({e.strerror or e})"
    mode = st.st_mode
    what = (
        None
        if stat.S_ISREG(mode)
        else "is a folder, not a file"
        if stat.S_ISDIR(mode)
        else "is a FIFO (named pipe), not a file"
        if stat.S_ISFIFO(mode)
        else "is a device, not a file"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "is a socket, not a file"
        if stat.S_ISSOCK(mode)
        else "is not a regular file"
    )
    if what is None:
        return None
    return f"{link}{what}" if link else what


def _file_in(spec: BackboneSpec, path: Path) -> Path:
    """``path`` itself if it is a file, or the first of ``spec.hf_files`` inside a folder."""
    if path.is_dir():
        for name in spec.hf_files:
            if (path / name).is_file():
                return path / name
        raise WeightsError(path, f"is a folder without any of {', '.join(spec.hf_files)}")
    _require_file(path)
    return path


def _require_file(path: Path) -> None:
    """Raise :class:`WeightsError` with the accurate reason unless ``path`` is a regular file."""
    reason = not_a_file_reason(path)
    if reason is not None:
        if reason.endswith(("not a file", "not a regular file")):
            reason += ": weights must be a regular file"
        raise WeightsError(path, reason)


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


def _stat_key(st: os.stat_result) -> dict[str, int]:
    """What must not have changed for a remembered digest to stand: the file's identity
    (device, inode: a file replaced by a rename is another file) and its size and times. The
    change time cannot be set back (``touch -r``, ``cp -p`` and ``rsync -t`` restore the
    modification time only), so a rewrite in place with the same size and a restored mtime is
    still noticed."""
    return {
        "dev": st.st_dev,
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _remember_sha256(real: Path, st: os.stat_result, digest: str) -> None:
    memo = {k: v for k, v in _read_memo().items() if os.path.exists(k)}
    memo[str(real)] = {**_stat_key(st), "sha256": digest}
    try:
        atomic_write_text(_memo_path(), json.dumps(memo, indent=1, sort_keys=True))
    except SaveError as e:  # only a memo: the next start hashes again
        log.warning("could not record the weights' SHA-256: %s", e)


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (hex), memoised in ``cache_dir()`` by real path, device, inode,
    size, modification and change times (:func:`_stat_key`): a later run does not read the
    file again, and any change to it is hashed anew.

    Raises:
        WeightsError: the file cannot be read.
    """
    try:
        real = Path(path).resolve(strict=True)
        st = real.stat()
        entry = _read_memo().get(str(real))
        if (
            isinstance(entry, dict)
            and all(entry.get(k) == v for k, v in _stat_key(st).items())
            and isinstance(entry.get("sha256"), str)
        ):
            return str(entry["sha256"])
        h = hashlib.sha256()
        with open(real, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise WeightsError(path, f"cannot be read ({e.strerror or e})") from e
    _remember_sha256(real, st, h.hexdigest())
    return h.hexdigest()


# --- reading and loading ----------------------------------------------------------------------

Format = Literal["safetensors", "torch-zip", "torch-legacy"]

#: Globals a plain tensor pickle may name besides torch's own ``weights_only`` allow-list
#: (used when that private list cannot be read).
_SAFE_GLOBALS_FALLBACK = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Size",
    }
)
_SAFETENSORS_HEADER_MAX = 100 << 20
_PICKLE_MAX = 256 << 20
_ST_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


def _safe_global(name: str) -> bool:
    if name in _SAFE_GLOBALS_FALLBACK:
        return True
    module, _, attr = name.rpartition(".")
    if module in ("torch", "torch.cuda") and (
        attr.endswith(("Storage", "Tensor")) or attr in _TORCH_DTYPE_NAMES
    ):
        return True
    return module == "torch._utils" and attr.startswith("_rebuild_")


_TORCH_DTYPE_NAMES = frozenset(
    "float64 float32 float16 bfloat16 int64 int32 int16 int8 uint8 bool complex64 complex128 "
    "double float half long int short cfloat cdouble float8_e4m3fn float8_e5m2".split()
)


def sniff_format(path: Path) -> Format:
    """What ``path`` holds, from its first bytes (the name does not matter).

    Raises:
        WeightsError: not a regular file, unreadable, or neither safetensors nor a PyTorch
            checkpoint.
    """
    _require_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise WeightsError(path, f"cannot be read ({e.strerror or e})") from e
    if not head:
        raise WeightsError(path, "is empty")
    if len(head) == 9 and head[8:] == b"{":
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[:1] == b"\x80":  # a pickle (torch.save's legacy format starts with one)
        return "torch-legacy"
    raise WeightsError(
        path, "is not a checkpoint: neither a safetensors file nor a PyTorch one (unknown content)"
    )


def safetensors_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every tensor's shape and dtype from a safetensors file's JSON header, checked against
    the file's size; no tensor data is read and torch is not imported.

    Raises:
        WeightsError: a truncated, padded or corrupt file.
    """
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > _SAFETENSORS_HEADER_MAX or 8 + n > size:
                raise ValueError(f"header of {n} bytes in a file of {size}")
            header = json.loads(f.read(n).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        out: dict[str, tuple[tuple[int, ...], str]] = {}
        end = 0
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            shape, dtype, (lo, hi) = entry["shape"], entry["dtype"], entry["data_offsets"]
            if not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError(f"{key}: bad shape {shape!r}")
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
                raise ValueError(f"{key}: bad offsets {lo!r}, {hi!r}")
            end = max(end, hi)
            out[key] = (tuple(shape), _ST_DTYPES.get(str(dtype), "float32"))
        if 8 + n + end != size:
            what = "truncated" if 8 + n + end > size else "longer than its header says"
            raise ValueError(
                f"{what}: the header describes {8 + n + end} bytes, the file has {size}"
            )
    except OSError as e:
        raise WeightsError(path, f"cannot be read ({e.strerror or e})") from e
    except (ValueError, KeyError, TypeError) as e:  # JSON and UTF-8 errors are ValueErrors
        raise WeightsError(path, f"truncated or corrupt safetensors file ({_reason(e)})") from e
    return out


def _pickle_stream(path: Path, fmt: Format) -> IO[bytes]:
    """The pickle stream of a PyTorch checkpoint, opened: ``data.pkl`` of a zip archive (read
    into memory: it holds no tensor data), or the file itself for the legacy format (its
    pickles come first: magic, protocol, system info, data, storage keys)."""
    if fmt == "torch-zip":
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
                raise WeightsError(
                    path,
                    "is a TorchScript archive (a compiled model, e.g. OpenAI's original CLIP "
                    ".pt), not a state dict: use the safetensors file from the model's Hugging "
                    "Face repo",
                )
            data = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(data) != 1:
                raise ValueError("a zip archive without one data.pkl: not a PyTorch checkpoint")
            info = z.getinfo(data[0])
            if info.file_size > _PICKLE_MAX:
                raise ValueError(f"data.pkl of {info.file_size} bytes")
            return io.BytesIO(z.read(info))
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def scan_pickle(path: Path, fmt: Format) -> None:
    """Refuse a checkpoint whose pickle names a callable other than tensor rebuilding.

    The opcodes are read with :mod:`pickletools` (nothing is unpickled): every ``GLOBAL``,
    ``INST`` and ``STACK_GLOBAL`` is checked; torch is not imported.

    Raises:
        WeightsError: "may run code: <module.name>", or an unreadable archive or pickle.
    """
    try:
        stream = _pickle_stream(path, fmt)
    except WeightsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise WeightsError(path, f"truncated or corrupt PyTorch checkpoint ({_reason(e)})") from e
    with stream:
        end = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        for _ in range(5 if fmt == "torch-legacy" else 1):
            if stream.tell() >= end:
                break
            try:
                _scan_one(stream, path)
            except ValueError as e:  # pickletools' "truncated"/"unknown opcode" errors
                raise WeightsError(
                    path, f"truncated, corrupt or not a checkpoint ({_reason(e)})"
                ) from e


#: Python 2 module names pickle protocols 0-2 write, as Python 3 knows them.
_OLD_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_STRING_OPS = frozenset(
    "STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8".split()
)


def _scan_one(stream: IO[bytes], path: Path) -> None:
    """Check the globals one pickle names (up to its STOP). ``STACK_GLOBAL`` takes its module
    and name from the stack: the strings pushed last, directly or from the memo. (A crafted
    pickle could hide a name from this tracking; ``torch.load(weights_only=True)`` still
    refuses it afterwards, so this scan is there to name the callable.)"""
    strings: list[str] = []
    memo: dict[int, str] = {}
    n_memo = 0
    last: str | None = None
    for op, arg, _ in pickletools.genops(stream):
        name, pushed = op.name, None
        index = arg if isinstance(arg, int) else -1
        if name in _STRING_OPS:
            pushed = str(arg)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT") and last is not None:
            memo[index] = last
        elif name == "MEMOIZE":
            if last is not None:
                memo[n_memo] = last
            n_memo += 1
        elif name in ("BINGET", "LONG_BINGET", "GET") and index in memo:
            pushed = memo[index]
        if name in ("GLOBAL", "INST"):
            target = str(arg).replace(" ", ".", 1)
        elif name == "STACK_GLOBAL":
            target = ".".join(strings[-2:]) if len(strings) >= 2 else "(a name built at load)"
        else:
            if pushed is not None:
                strings.append(pushed)
            if name not in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                last = pushed
            continue
        module, _, attr = target.partition(".")
        target = f"{_OLD_MODULES.get(module, module)}.{attr}"
        if not _safe_global(target):
            raise WeightsError(
                path,
                f"refused: may run code: {target} (the checkpoint's pickle names a Python "
                "callable; only safetensors files and plain tensor checkpoints are loaded)",
            )
        last = None


def _torch_message(e: BaseException) -> str:
    """torch's reason, without its advice to load with ``weights_only=False``."""
    text = _reason(e)
    return "details withheld" if "weights_only" in text else text


def _load_torch(path: Path, fmt: Format | None = None, *, mmap: bool = False) -> Any:
    fmt = fmt or sniff_format(path)
    if fmt == "safetensors":
        raise WeightsError(
            path,
            "not a PyTorch checkpoint: it looks like a safetensors file: rename it to .safetensors",
        )
    scan_pickle(path, fmt)  # before torch is imported: a refusal costs milliseconds
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # we refuse TorchScript above; no "dispatching" note
            warnings.filterwarnings("ignore", "'torch.load' received a zip file", UserWarning)
            return torch.load(
                path, map_location="cpu", weights_only=True, mmap=mmap and fmt == "torch-zip"
            )
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            detail = str(e).split("Unsupported global:")[-1].split(" was not")[0].strip()
            detail = detail.removeprefix("GLOBAL").strip()
            raise WeightsError(
                path,
                f"refused: may run code: {detail} (the checkpoint's pickle names a Python "
                "callable; only safetensors files and plain tensor checkpoints are loaded)",
            ) from e
        raise WeightsError(
            path, f"not a PyTorch checkpoint, or corrupt ({_torch_message(e)})"
        ) from e
    except RuntimeError as e:
        if "TorchScript" in str(e):
            raise WeightsError(
                path,
                "is a TorchScript archive (a compiled model, e.g. OpenAI's original CLIP .pt), "
                "not a state dict: use the safetensors file from the model's Hugging Face repo",
            ) from e
        raise WeightsError(
            path, f"truncated or corrupt PyTorch checkpoint ({_torch_message(e)})"
        ) from e
    except (EOFError, KeyError, ValueError, TypeError, OSError) as e:
        raise WeightsError(
            path, f"truncated, corrupt or not a checkpoint ({_torch_message(e)})"
        ) from e


def _unwrap(data: Any, path: Path, is_entry: Any) -> dict[str, Any]:
    """``data``'s state dict: ``{"state_dict": ...}``/``{"model": ...}`` wrappers unwrapped, a
    ``module.`` prefix (DataParallel) stripped; ``is_entry`` tells a tensor entry."""
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
    bad = [k for k, v in data.items() if not isinstance(k, str) or not is_entry(v)]
    if bad:
        raise WeightsError(
            path, f"is not a state dict: {len(bad)} entries are not tensors, e.g. {bad[:3]}"
        )
    if data and all(k.startswith("module.") for k in data):
        return {k[len("module.") :]: v for k, v in data.items()}
    return dict(data)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a plain tensor checkpoint (``.bin/.pt/.pth``).

    ``{"state_dict": ...}`` and ``{"model": ...}`` wrappers are unwrapped and a ``module.``
    prefix (DataParallel) is stripped. Pickles are scanned (:func:`scan_pickle`) and read with
    ``weights_only=True`` only.

    Raises:
        WeightsError: missing file or not a regular one, unknown extension, code in a pickle,
            a truncated or corrupt file, a TorchScript archive, or a payload that is not
            names → tensors.
    """
    import torch

    path = Path(path)
    _require_file(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        safetensors_shapes(path)  # a truncated file is refused before any tensor is read
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
    return _unwrap(data, path, lambda v: isinstance(v, torch.Tensor))


def file_shapes(path: Path, fmt: Format | None = None) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` as tensors on the ``meta`` device: keys, shapes and dtypes
    only. Safetensors: from the JSON header; a checkpoint: scanned, then memory-mapped
    (``torch.load(weights_only=True, mmap=True)``), so no tensor data is read.

    Raises:
        WeightsError: as :func:`read_state_dict`.
    """
    fmt = fmt or sniff_format(path)
    if fmt == "safetensors":
        header = safetensors_shapes(path)  # before torch is imported
        import torch

        return {
            k: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
            for k, (shape, dtype) in header.items()
        }
    raw = _load_torch(path, fmt, mmap=True)
    import torch

    sd = _unwrap(raw, path, lambda v: isinstance(v, torch.Tensor))
    return {k: v.to("meta") for k, v in sd.items()}


def expected_model(spec: BackboneSpec) -> torch.nn.Module:
    """``build_model(spec)`` on the ``meta`` device: the module tree and every parameter's
    shape, without allocating the weights (milliseconds, a few MB)."""
    import torch

    with torch.device("meta"):
        return build_model(spec)


def check_weights(spec: BackboneSpec, path: Path, fmt: Format | None = None) -> Format:
    """Check that ``path`` holds ``spec``'s weights without building the model or reading
    tensor data: the file's keys and shapes against those of :func:`expected_model`.

    Returns:
        the file's format.

    Raises:
        WeightsError: as :func:`read_state_dict`, or the file does not fit (the message says
            which keys and shapes).
    """
    path = Path(path)
    fmt = fmt or sniff_format(path)
    sd = file_shapes(path, fmt)
    model = expected_model(spec)
    _require_fit(_convert(sd, model, spec, path), model, spec, path)
    return fmt


def _require_fit(
    sd: Mapping[str, torch.Tensor], model: torch.nn.Module, spec: BackboneSpec, path: Path
) -> None:
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


def load_weights(
    model: torch.nn.Module, spec: BackboneSpec, path: Path, *, assign: bool = False
) -> None:
    """Load ``path`` into ``model`` (built by ``build_model(spec)``), strictly.

    Keys and shapes are compared before the model is touched: on any mismatch the model is
    left exactly as it was.

    Args:
        model: the model.
        spec: its backbone.
        path: the weights file.
        assign: the file's tensors become the model's (``load_state_dict(assign=True)``): for
            a model built on the ``meta`` device (:func:`load_model`), nothing is copied.

    Raises:
        WeightsError: the file cannot be read (see :func:`read_state_dict`) or does not fit.
    """
    path = Path(path)
    sd = _convert(read_state_dict(path), model, spec, path)
    _require_fit(sd, model, spec, path)
    try:
        model.load_state_dict(sd, strict=True, assign=assign)
    except RuntimeError as e:
        raise WeightsError(path, f"could not be loaded into {spec.id} ({_reason(e)})") from e


def load_model(spec: BackboneSpec, path: Path) -> torch.nn.Module:
    """``build_model(spec)`` with ``path``'s weights, built on the ``meta`` device and given
    the file's tensors (``assign=True``): the random initialisation is never computed nor
    allocated, so the peak memory is the weights once, not twice. Buffers that are not part
    of a state dict (open_clip's causal ``attn_mask``) are then built for real; a model that
    still has such a tensor left on ``meta`` is built the ordinary way instead.

    Raises:
        WeightsError: as :func:`load_weights`.
    """
    model = expected_model(spec)
    load_weights(model, spec, path, assign=True)
    import torch

    mask = getattr(model, "attn_mask", None)
    if spec.family == "open_clip" and isinstance(mask, torch.Tensor) and mask.is_meta:
        n = mask.shape[-1]  # open_clip's causal text mask: additive, -inf above the diagonal
        model.attn_mask = torch.full((n, n), float("-inf")).triu_(1)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        log.info("%s: a tensor outside the state dict; building the model in full", spec.id)
        model = build_model(spec)
        load_weights(model, spec, path)
    return model


def import_weights(
    spec: BackboneSpec, source: Path, *, progress: ProgressFn | None = None
) -> ResolvedWeights:
    """Check ``source`` against ``spec`` and keep a copy in ``data_dir()/weights/<id>/``.

    The file's keys and shapes are checked (:func:`check_weights`: headers only, no model is
    built), so a wrong file is refused in a second or two, before anything is copied. The
    copy is made beside the target, checked again, and moved into place with ``os.replace``;
    only then are earlier imports for ``spec`` removed, so a refusal or a failed copy leaves
    the working weights as they were. Any file name works: the stored name is the source's,
    made visible and printable (``.hidden.safetensors`` → ``hidden.safetensors``), with the
    extension of what the file holds. A ``<name>.json`` metadata sidecar travels with it, so
    an imported segmenter checkpoint of ours keeps its calibration (``sketchpad_fine_tuned``,
    ``tau``: :mod:`sketchpad.vision.checkpoints`). Any of a checkpoint's three files may be
    given; its weights are imported.

    Args:
        spec: the backbone.
        source: a weights file, or a folder holding one of ``spec.hf_files``.
        progress: called with (bytes copied, total) after every chunk of the copy; an
            exception it raises stops the import (the partial copy is removed, the working
            weights are untouched) and propagates: a cancel.

    Raises:
        WeightsError: the file does not exist or is not a regular file, cannot be read, may
            run code, does not fit, is a checkpoint of another backbone or of another kind
            than a segmenter, or the copy failed.
    """
    if spec.family == "sketchfusion":  # a Stable Diffusion folder in diffusers' layout
        from sketchpad.vision.fusion.sd import UNET_WEIGHTS, import_sd

        sd = import_sd(spec, Path(source))
        return ResolvedWeights(sd.folder / UNET_WEIGHTS, "imported", sd.sha256)
    src = _checked_source(spec, Path(source).expanduser())
    fmt = check_weights(spec, src)
    folder = imported_dir(spec)
    target = folder / stored_name(src, fmt, spec)
    sidecar = src.with_suffix(".json") if src.suffix else src.with_name(src.name + ".json")
    made: list[Path] = []
    try:
        paths.private_dir(folder)
        tmp, digest = _copy_to_temp(src, target, progress)
        made.append(tmp)
        check_weights(spec, tmp, fmt)  # the copy is what will be used
        meta_tmp = None
        if sidecar.is_file():
            meta_tmp, _ = _copy_to_temp(sidecar, target.with_suffix(".json"))
            made.append(meta_tmp)
        os.replace(tmp, target)
        keep = {target.name, _IMPORT_RECORD}
        if meta_tmp is not None:
            os.replace(meta_tmp, target.with_suffix(".json"))
            keep.add(target.with_suffix(".json").name)
        for old in folder.iterdir():  # one imported file per backbone, removed only now
            if old.name not in keep and not old.name.startswith(".") and old.is_file():
                old.unlink()
        record = {"file": target.name, "source": str(src.resolve()), "sha256": digest}
        atomic_write_text(folder / _IMPORT_RECORD, json.dumps(record, indent=1))
    except OSError as e:
        raise WeightsError(target, f"could not copy {src} there ({e.strerror or e})") from e
    finally:
        for leftover in made:
            leftover.unlink(missing_ok=True)
    _remember_sha256(target.resolve(), target.stat(), digest)
    return ResolvedWeights(target, "imported", digest)


def stored_name(src: Path, fmt: Format, spec: BackboneSpec) -> str:
    """The name an imported ``src`` is kept under: its own, made visible (no leading dot,
    which marks temporary files and is skipped by the lookup), printable (bytes that are not
    UTF-8 and control characters become ``_``), with the extension of what it holds."""
    raw = os.fsencode(src.name).decode("utf-8", "replace")
    stem, dot, ext = raw.rpartition(".")
    if not dot or ext.lower() not in {x[1:] for x in WEIGHT_SUFFIXES}:
        stem = raw
    clean = "".join("_" if c == "\ufffd" or not c.isprintable() else c for c in stem)
    clean = clean.strip().lstrip(".").strip() or spec.id
    if fmt == "safetensors":
        suffix = ".safetensors"
    else:
        suffix = f".{ext.lower()}" if dot and f".{ext.lower()}" in WEIGHT_SUFFIXES else ".pt"
        suffix = ".pt" if suffix == ".safetensors" else suffix
    return clean[:200] + suffix


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


def _copy_to_temp(src: Path, target: Path, progress: ProgressFn | None = None) -> tuple[Path, str]:
    """Copy ``src`` to a private temporary file beside ``target`` (fsynced); return it and
    the SHA-256. The caller moves it into place or removes it. ``progress(done, total)``
    follows every chunk; if it raises, the temporary file is removed and the error goes on."""
    h = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            total = os.fstat(fin.fileno()).st_size
            done = 0
            if progress is not None:
                progress(0, total)
            while chunk := fin.read(_CHUNK):
                h.update(chunk)
                fout.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            fout.flush()
            os.fsync(fout.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, h.hexdigest()
