"""The Hugging Face Hub side of finding weights (DESIGN §4.1): its cache, endpoint and downloads.

Configuration (cache folder, endpoint, offline switch) is read from the environment at call
time, not at import as huggingface_hub does. A download first probes the Hub once, with a
short timeout and no retries, so a dead network is reported within seconds; failures are
raised as :class:`DownloadFailed`, which :mod:`sketchpad.vision.weights` turns into its own
errors. huggingface_hub, httpx2 and tqdm are imported inside the functions that need them and
torch not at all, so ``sketchpad models list`` answers quickly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sketchpad.vision.registry import BackboneSpec

log = logging.getLogger(__name__)

#: (bytes done, total bytes or None), possibly from a worker thread. Raising from it cancels
#: a plain HTTP download: the exception propagates and no partial file is left in the cache.
ProgressFn = Callable[[int, int | None], None]

#: Seconds to wait for the Hub's first answer before calling the network down (no retries).
HUB_TIMEOUT_S = 5.0
_TRUE = {"1", "ON", "YES", "TRUE"}


class DownloadFailed(Exception):
    """The Hub could not be reached or has no file for us (message: the reason)."""


def short_reason(e: BaseException) -> str:
    """``"<ExceptionType>: <first line of its message>"``, for one-line error reports.

    Args:
        e: the exception to summarise.

    Returns:
        The exception's type name and the first line of its message (or ``no details``).
    """
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else 'no details'}"


# --- configuration read at call time (huggingface_hub reads its env vars at import) ---------


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().upper() in _TRUE


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether ``HF_HUB_OFFLINE`` or ``SKETCHPAD_OFFLINE`` is set."""
    if offline is not None:
        return offline
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("SKETCHPAD_OFFLINE"))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache root, as huggingface_hub computes it, from the env *now*:
    ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache/huggingface/hub``)."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if not env:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
        env = os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(env)))


def hf_endpoint() -> str:
    """The Hub's base URL: ``HF_ENDPOINT`` (read now) or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


# --- the HF cache -----------------------------------------------------------------------------


def hf_cached(spec: BackboneSpec) -> Path | None:
    """The first of ``spec.hf_files`` in the HF cache, looked up without any network.

    Args:
        spec: the backbone whose ``hf_repo``, ``hf_revision`` and ``hf_files`` are looked up.

    Returns:
        The cached file, or None when none of ``spec.hf_files`` is in the cache.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for name in spec.hf_files:
        try:
            found = hf_hub_download(
                spec.hf_repo,
                name,
                revision=spec.hf_revision,
                cache_dir=hf_cache_dir(),
                local_files_only=True,
            )
        except (EntryNotFoundError, OSError, ValueError) as e:
            log.debug("%s/%s not in the HF cache: %s", spec.hf_repo, name, e)
            continue
        return Path(found)
    return None


def hf_repo_folder(spec: BackboneSpec) -> Path:
    """The folder of ``spec.hf_repo`` in the HF cache (it may not exist)."""
    return hf_cache_dir() / ("models--" + spec.hf_repo.replace("/", "--"))


def download_url(spec: BackboneSpec) -> str:
    """The URL that ``spec.hf_files`` are downloaded from (the folder, ending in ``/``)."""
    return f"{hf_endpoint()}/{spec.hf_repo}/resolve/{spec.hf_revision or 'main'}/"


# --- download -----------------------------------------------------------------------------


def _progress_bridge(progress: ProgressFn | None) -> type:
    """A silent tqdm class for ``hf_hub_download(tqdm_class=...)`` that forwards byte counts."""
    from tqdm.auto import tqdm

    class _ProgressBridge(tqdm):  # type: ignore[type-arg]  # generic in its stubs only
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # no terminal output from library code
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)
            self._done = int(kwargs.get("initial") or 0)
            self._report()

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            self._report()
            return None

        # Xet downloads: with these defined, huggingface_hub drives one bar (bytes written
        # through update(), network bytes here); we report bytes written only.
        def update_transfer(self, n: float) -> None:
            pass

        def set_transfer_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            pass

        def _report(self) -> None:
            if progress is not None:
                progress(self._done, int(self.total) if self.total else None)

    return _ProgressBridge


def _probe(url: str, endpoint: str) -> None:
    """HEAD ``url`` once, with a short timeout and no retries; raise what went wrong.

    Run in a thread with a hard deadline too: httpx's timeouts do not cover a hanging DNS
    lookup. (``hf_hub_download`` alone would retry a dead network for ~25 s.)
    """
    from huggingface_hub import get_hf_file_metadata

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            get_hf_file_metadata(
                url, timeout=HUB_TIMEOUT_S, endpoint=endpoint, retry_on_errors=False
            )
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed over to the caller's thread
            outcome.append(e)

    thread = threading.Thread(target=run, name="sketchpad-hub-probe", daemon=True)
    thread.start()
    thread.join(2 * HUB_TIMEOUT_S)
    if not outcome:
        raise TimeoutError(f"no answer from {endpoint} within {2 * HUB_TIMEOUT_S:g} s")
    if outcome[0] is not None:
        raise outcome[0]


def download(spec: BackboneSpec, progress: ProgressFn | None = None) -> Path:
    """Download the first of ``spec.hf_files`` that the Hub has into the HF cache.

    Each file is probed first (see :func:`_probe`), so an unreachable Hub fails fast.

    Args:
        spec: the backbone whose ``hf_repo``, ``hf_revision`` and ``hf_files`` are fetched.
        progress: called with (bytes done, total or None) while downloading; raising from it
            cancels the download.

    Returns:
        The downloaded file, inside :func:`hf_cache_dir`.

    Raises:
        DownloadFailed: the Hub cannot be reached, refused, has none of the files, or the
            transfer failed; the message says which.
    """
    import httpx2
    from huggingface_hub import hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    endpoint = hf_endpoint()
    absent = []
    for name in spec.hf_files:
        url = hf_hub_url(spec.hf_repo, name, revision=spec.hf_revision, endpoint=endpoint)
        try:
            _probe(url, endpoint)
        except EntryNotFoundError:
            absent.append(name)
            continue
        except HfHubHTTPError as e:  # e.g. 401/404 for the repo, 5xx
            raise DownloadFailed(f"{endpoint} answered {short_reason(e)}") from e
        except (httpx2.HTTPError, OSError) as e:  # OSError: huggingface_hub's offline mode too
            raise DownloadFailed(f"cannot reach {endpoint} ({short_reason(e)})") from e
        try:
            found = hf_hub_download(
                spec.hf_repo,
                name,
                revision=spec.hf_revision,
                cache_dir=hf_cache_dir(),
                endpoint=endpoint,
                etag_timeout=HUB_TIMEOUT_S,
                tqdm_class=_progress_bridge(progress),
            )
        except (httpx2.HTTPError, HfHubHTTPError, EntryNotFoundError, OSError, ValueError) as e:
            raise DownloadFailed(f"downloading {url} failed ({short_reason(e)})") from e
        return Path(found)
    raise DownloadFailed(f"{endpoint}/{spec.hf_repo} has none of {', '.join(absent)}")
