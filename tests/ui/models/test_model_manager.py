"""The model manager dialog and the preferences file: statuses of the tiny test backbones before
and after an import, a download from a local stand-in Hub (progress, cancel), readable errors,
the device and fp16 preferences.

Random weights of the tiny registered variants are saved in the real formats, so the real
checking, import, download and lookup code runs offline. The HF cache and our folders are
under tmp; nothing reaches the network or the user's folders.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import huggingface_hub.constants as hf_constants
import pytest
import safetensors.torch
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from sketchpad.engine import downloads, threads
from sketchpad.engine.downloads import missing_weights, weights_status
from sketchpad.ui.models import manager as model_manager
from sketchpad.ui.models.manager import ModelManagerDialog
from sketchpad.vision.registry import Family, build_model, get_spec
from sketchpad.vision.weights import imported_dir
from sketchpad.workspace.preferences import MAX_RECENT_FOLDERS, Preferences

TINY = ["test-clip-tiny", "test-dinov2-tiny"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our folders and the HF cache under tmp, offline (huggingface_hub's import-time copies
    of its variables agree); the CUDA probe answers at once, without torch."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("SKETCHPAD_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT", "SKETCHPAD_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(model_manager.SHOW_TEST_MODELS_ENV, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(model_manager, "probe_cuda", lambda: (False, "no GPU in this test"))
    return cache


@functools.cache
def tiny_weights(spec_id: str) -> bytes:
    """Random weights of a tiny variant as safetensors bytes."""
    torch.manual_seed(0)
    model = build_model(get_spec(spec_id))
    return safetensors.torch.save(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    )


def write_weights(path: Path, spec_id: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny_weights(spec_id))
    return path


class Dialog(ModelManagerDialog):
    """The dialog with its questions answered and its errors and opened folders recorded."""

    def __init__(self, **kwargs: Any) -> None:
        self.errors: list[tuple[str, str]] = []
        self.offers: list[list[str]] = []
        self.opened: list[Path] = []
        self.answers: list[Path | None] = []
        self.asked: list[tuple[str, bool]] = []
        super().__init__(**kwargs)

    def _ask_import_path(self, backbone_id: str, *, folder: bool) -> Path | None:
        self.asked.append((backbone_id, folder))
        return self.answers.pop(0)

    def _show_error(self, title: str, text: str, offer: Sequence[str] = ()) -> None:
        self.errors.append((title, text))
        self.offers.append(list(offer))

    def _open_folder(self, folder: Path) -> None:
        self.opened.append(folder)


@pytest.fixture
def make_dialog(qtbot: Any) -> Iterator[Callable[..., Dialog]]:
    """make_dialog(**kwargs) → a shown Dialog (tiny backbones listed) whose first status scan
    has ended; every one is shut down, and no weights thread may outlive the test."""
    dialogs: list[Dialog] = []

    def make(**kwargs: Any) -> Dialog:
        kwargs.setdefault("include_testing", True)
        dialog = Dialog(**kwargs)
        qtbot.addWidget(dialog)
        dialog.show()
        dialogs.append(dialog)
        assert dialog.wait_until_idle(10)
        return dialog

    yield make
    for dialog in dialogs:
        assert dialog.shutdown(10), "a weights thread did not stop"
    assert threads.live_count() == 0, "a weights thread leaked"


def wait_for_text(qtbot: Any, dialog: Dialog, spec_id: str, column: str, text: str) -> None:
    qtbot.waitUntil(lambda: dialog.row_texts(spec_id)[column] == text, timeout=10_000)


# --- the table ---------------------------------------------------------------------------------


def test_every_family_has_its_own_kind() -> None:
    assert set(model_manager.KINDS) == set(get_args(Family))
    assert len(set(model_manager.KINDS.values())) == len(model_manager.KINDS)


def test_test_backbones_are_listed_only_when_asked(
    make_dialog: Callable[..., Dialog], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = make_dialog(include_testing=False)
    ids = [s.id for s in plain.specs]
    assert "clip-vit-b16" in ids and "dinov2-vits14" in ids
    assert not [i for i in ids if i.startswith("test-")]
    assert plain.table.rowCount() == len(ids)
    row = plain.row_texts("clip-vit-b16")
    assert row["Size"] == "≈ 599 MB" and row["For"] == "Category · CLIP"
    assert plain.row_texts("dinov2-vits14")["For"] == "Fine-grained · DINOv2"
    for fusion in ("sketchfusion-sd21-l14", "sketchfusion-sd21-b16"):
        assert plain.row_texts(fusion)["For"] == "Dense · SketchFusion"
    assert plain.download_button.text() == "Download (≈ 599 MB)"
    monkeypatch.setenv(model_manager.SHOW_TEST_MODELS_ENV, "1")
    assert set(TINY) <= {s.id for s in make_dialog(include_testing=None).specs}


@pytest.mark.parametrize("spec_id", TINY)
def test_status_before_and_after_an_import(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path, spec_id: str
) -> None:
    dialog = make_dialog()
    before = dialog.row_texts(spec_id)
    assert (before["Status"], before["Location"], before["Size"]) == ("Missing", "—", "unknown")
    assert missing_weights(spec_id) is not None
    source = write_weights(tmp_path / "mine" / "weights.safetensors", spec_id)

    with qtbot.waitSignal(dialog.weightsChanged, timeout=20_000) as changed:
        dialog.import_from(spec_id, source)
        assert dialog.job.busy  # off the GUI thread
    assert changed.args == [spec_id]
    target = imported_dir(get_spec(spec_id)) / "weights.safetensors"
    wait_for_text(qtbot, dialog, spec_id, "Status", "Imported")
    after = dialog.row_texts(spec_id)
    assert after["Location"] == str(target)
    assert after["Size"] == downloads.format_size(len(tiny_weights(spec_id)))
    assert target.read_bytes() == source.read_bytes()
    assert missing_weights(spec_id) is None
    assert not dialog.errors
    assert not dialog.asked  # import_from asks nothing: the file dialog's answer goes there
    other = next(i for i in TINY if i != spec_id)
    assert dialog.row_texts(other)["Status"] == "Missing"


def test_import_a_folder_through_the_import_question(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path
) -> None:
    spec = get_spec("test-dinov2-tiny")
    dialog = make_dialog()
    dialog.answers = [None]  # cancelled: nothing happens
    dialog.import_dialog(spec.id, folder=True)
    assert dialog.asked == [(spec.id, True)] and not dialog.job.busy
    assert dialog.selected_id() == spec.id
    folder = tmp_path / "downloaded-by-hand"
    write_weights(folder / spec.hf_files[0], spec.id)  # model.safetensors, as the repo has it
    dialog.answers = [folder]
    with qtbot.waitSignal(dialog.weightsChanged, timeout=20_000):
        dialog.import_dialog(folder=True)  # the selected backbone
    wait_for_text(qtbot, dialog, spec.id, "Status", "Imported")
    assert dialog.row_texts(spec.id)["Location"] == str(imported_dir(spec) / spec.hf_files[0])


def test_open_folder_copy_path_and_default(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path
) -> None:
    prefs = Preferences.load(tmp_path / "prefs.json")
    dialog = make_dialog(preferences=prefs)
    spec = get_spec("test-dinov2-tiny")
    dialog.select_backbone(spec.id)
    dialog.open_folder()  # nothing yet: where an import goes
    assert dialog.opened == [imported_dir(spec)] and imported_dir(spec).is_dir()
    dialog.import_from(spec.id, write_weights(tmp_path / "w" / "model.safetensors", spec.id))
    wait_for_text(qtbot, dialog, spec.id, "Status", "Imported")
    dialog.copy_path()
    assert QGuiApplication.clipboard().text() == str(imported_dir(spec) / "model.safetensors")

    with qtbot.waitSignal(dialog.preferencesChanged):
        dialog.set_default()
    assert Preferences.load(tmp_path / "prefs.json").backbone == spec.id
    assert dialog.row_texts(spec.id)["Backbone"].endswith("(default)")
    assert not dialog.row_texts("clip-vit-b16")["Backbone"].endswith("(default)")
    assert not dialog.default_button.isEnabled()


# --- download from a stand-in Hub ---------------------------------------------------------------


class _Hub(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]
    gate: threading.Event | None  # when set: serve 64 KB, then wait for the gate
    gate_after = 64 * 1024


class _HubHandler(BaseHTTPRequestHandler):
    """``/<repo>/resolve/<revision>/<file>`` as the Hub answers for an LFS file (HEAD: commit,
    ETag = SHA-256, size)."""

    server: _Hub

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        data = self.server.files.get(urllib.parse.unquote(self.path))
        self.send_response(404 if data is None else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        if data is None:
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        try:
            gate = self.server.gate
            if gate is not None:
                self.wfile.write(data[: self.server.gate_after])
                self.wfile.flush()
                gate.wait(10)
                data = data[self.server.gate_after :]
            self.wfile.write(data)
        except OSError:
            pass  # the client hung up (a cancelled download)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Hub]:
    """A local stand-in for huggingface.co serving the tiny DINOv2's weights; online mode
    pointed at it, small chunks and unthrottled progress so every chunk is reported."""
    server = _Hub(("127.0.0.1", 0), _HubHandler)
    spec = get_spec("test-dinov2-tiny")
    server.files = {f"/{spec.hf_repo}/resolve/main/{spec.hf_files[0]}": tiny_weights(spec.id)}
    server.gate = None
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    monkeypatch.setattr(downloads, "PROGRESS_INTERVAL_S", 0.0)
    yield server
    if server.gate is not None:
        server.gate.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def blobs(cache: Path, spec_id: str) -> list[Path]:
    folder = cache / ("models--" + get_spec(spec_id).hf_repo.replace("/", "--")) / "blobs"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_download_shows_monotonic_progress_and_ends_downloaded(
    make_dialog: Callable[..., Dialog], qtbot: Any, hub: _Hub, isolated: Path
) -> None:
    spec_id, data = "test-dinov2-tiny", tiny_weights("test-dinov2-tiny")
    dialog = make_dialog()
    dialog.select_backbone(spec_id)
    assert dialog.download_button.isEnabled()
    calls: list[tuple[int, object]] = []
    bar: list[int] = []
    dialog.job.progress.connect(lambda i, done, total: calls.append((done, total)))
    dialog.progress_bar.valueChanged.connect(bar.append)

    with qtbot.waitSignal(dialog.weightsChanged, timeout=20_000):
        dialog.download_button.click()
        assert dialog.progress_bar.isVisible() and dialog.cancel_button.isVisible()
    wait_for_text(qtbot, dialog, spec_id, "Status", "Downloaded")

    assert len(calls) > 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1] == (len(data), len(data))
    assert bar == sorted(bar) and bar[-1] == 1000
    location = Path(dialog.row_texts(spec_id)["Location"])
    assert location.parent.name == COMMIT and location.read_bytes() == data
    assert weights_status(get_spec(spec_id)).state == "downloaded"
    assert "Downloaded test-dinov2-tiny" in dialog.status_label.text()
    assert not dialog.progress_bar.isVisible() and not dialog.cancel_button.isVisible()
    assert not dialog.download_button.isEnabled()  # nothing left to download
    assert not dialog.errors


def test_cancelling_mid_download_leaves_no_file(
    make_dialog: Callable[..., Dialog], qtbot: Any, hub: _Hub, isolated: Path
) -> None:
    spec_id = "test-dinov2-tiny"
    hub.gate = threading.Event()
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.job.progress, check_params_cb=lambda i, d, t: d > 0):
        dialog.start_download(spec_id)
    dialog.start_download("test-clip-tiny")  # one job at a time: said, not raised
    assert dialog.errors and dialog.errors[-1][0] == "Busy"
    assert "test-dinov2-tiny" in dialog.errors[-1][1]

    with qtbot.waitSignal(dialog.job.cancelled, timeout=10_000) as cancelled:
        dialog.cancel_button.click()
        hub.gate.set()
    assert cancelled.args == [spec_id]
    assert dialog.wait_until_idle(10)
    assert blobs(isolated, spec_id) == []  # no partial file
    assert weights_status(get_spec(spec_id)).state == "missing"
    assert dialog.row_texts(spec_id)["Status"] == "Missing"
    assert "cancelled" in dialog.status_label.text()
    assert len(dialog.errors) == 1

    hub.gate = None  # the dialog still works
    with qtbot.waitSignal(dialog.weightsChanged, timeout=20_000):
        dialog.start_download(spec_id)
    wait_for_text(qtbot, dialog, spec_id, "Status", "Downloaded")


# --- errors ---------------------------------------------------------------------------------------


def test_a_corrupt_file_is_refused_with_its_name_and_the_dialog_still_works(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path
) -> None:
    spec_id = "test-dinov2-tiny"
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(tiny_weights(spec_id)[:5000])
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.job.failed, timeout=20_000):
        dialog.import_from(spec_id, broken)
    assert len(dialog.errors) == 1
    title, text = dialog.errors[0]
    assert spec_id in title
    assert str(broken) in text and "corrupt" in text
    assert str(broken) in dialog.status_label.text()
    assert dialog.wait_until_idle(10)
    assert dialog.row_texts(spec_id)["Status"] == "Missing"
    assert not any(imported_dir(get_spec(spec_id)).glob("*.safetensors"))

    good = write_weights(tmp_path / "good.safetensors", spec_id)
    with qtbot.waitSignal(dialog.weightsChanged, timeout=20_000):
        dialog.import_from(spec_id, good)
    wait_for_text(qtbot, dialog, spec_id, "Status", "Imported")
    assert len(dialog.errors) == 1


def test_offline_download_and_unexpected_errors_are_shown_not_raised(
    make_dialog: Callable[..., Dialog], qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dialog = make_dialog()
    with qtbot.waitSignal(dialog.job.failed, timeout=10_000):
        dialog.start_download("test-clip-tiny")
    title, text = dialog.errors[-1]
    assert title == "Could not download test-clip-tiny"
    assert "No weights found for test-clip-tiny" in text and "offline" in text

    def planted(*args: object, **kwargs: object) -> None:
        raise RuntimeError("planted failure")

    monkeypatch.setattr("sketchpad.vision.weights.import_weights", planted)
    with qtbot.waitSignal(dialog.job.failed, timeout=10_000):
        dialog.import_from("test-clip-tiny", tmp_path / "whatever.safetensors")
    assert "RuntimeError: planted failure" in dialog.errors[-1][1]
    dialog.import_from("no-such-model", tmp_path)
    assert dialog.errors[-1][0] == "Unknown model"
    assert dialog.wait_until_idle(10) and not dialog.job.busy


# --- device and precision ------------------------------------------------------------------------


def test_the_device_preference_round_trips_through_the_file(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path
) -> None:
    path = tmp_path / "config" / "preferences.json"
    dialog = make_dialog(preferences=Preferences.load(path))
    assert dialog.device_combo.currentData() == "auto" and dialog.fp16_box.isChecked()
    with qtbot.waitSignal(dialog.preferencesChanged):
        dialog.set_device("cpu")
    assert not dialog.fp16_box.isEnabled()  # no effect on the CPU
    with qtbot.waitSignal(dialog.preferencesChanged):
        dialog.set_device("auto")
    with qtbot.waitSignal(dialog.preferencesChanged):
        dialog.fp16_box.setChecked(False)
    with qtbot.waitSignal(dialog.preferencesChanged):
        dialog.set_device("cuda")
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert (stored["device"], stored["fp16"]) == ("cuda", False)
    assert not dialog.errors

    again = make_dialog(preferences=Preferences.load(path))
    assert again.device_combo.currentData() == "cuda"
    assert not again.fp16_box.isChecked()
    assert "No CUDA GPU here" in again.device_note.text()


@pytest.mark.parametrize(("found", "detail"), [(False, "no GPU in this test"), (True, "Test GPU")])
def test_the_gpu_entry_follows_the_cuda_probe(
    make_dialog: Callable[..., Dialog], monkeypatch: pytest.MonkeyPatch, found: bool, detail: str
) -> None:
    monkeypatch.setattr(model_manager, "probe_cuda", lambda: (found, detail))
    dialog = make_dialog()
    assert dialog.cuda_available is found
    index = dialog.device_combo.findData("cuda")
    item = dialog.device_combo.model().item(index)
    assert item.isEnabled() is found
    tip = dialog.device_combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert detail in tip and tip.startswith("Run on" if found else "Not available")


def test_opening_the_dialog_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from sketchpad.ui.models import manager as M\n"
        "M.probe_cuda = lambda: (False, 'test')\n"
        "d = M.ModelManagerDialog(include_testing=True)\n"
        "assert d.wait_until_idle(20)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "QT_QPA_PLATFORM": "offscreen",
        "SKETCHPAD_HOME": str(tmp_path / "home"),
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


# --- the preferences file ------------------------------------------------------------------------


def test_preferences_round_trip_and_keep_unknown_entries(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    path.write_text(json.dumps({"device": "cpu", "from_the_future": {"x": 1}}), encoding="utf-8")
    prefs = Preferences.load(path)
    assert (prefs.device, prefs.fp16, prefs.backbone) == ("cpu", True, "clip-vit-b16")
    prefs.fp16 = False
    prefs.backbone = "dinov2-vits14"
    for i in range(MAX_RECENT_FOLDERS + 2):
        prefs.add_recent_folder(tmp_path / f"photos{i}")
    prefs.add_recent_folder(tmp_path / "photos5")  # again: moves to the front
    prefs.save()
    again = Preferences.load(path)
    assert again == prefs
    assert again.recent_folders[0] == tmp_path / "photos5"
    assert again.recent_folders[1] == tmp_path / f"photos{MAX_RECENT_FOLDERS + 1}"
    assert len(again.recent_folders) == MAX_RECENT_FOLDERS
    assert json.loads(path.read_text(encoding="utf-8"))["from_the_future"] == {"x": 1}
    again.remove_recent_folder(tmp_path / "photos5")
    assert tmp_path / "photos5" not in again.recent_folders
    assert not list(tmp_path.glob(".preferences.json.*"))  # the atomic write's temp file is gone


def test_preferences_default_to_the_config_folder(tmp_path: Path) -> None:
    prefs = Preferences.load()
    assert prefs.path == tmp_path / "home" / "config" / "preferences.json"
    prefs.device = "cuda"
    prefs.save()
    assert Preferences.load().device == "cuda"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "damaged preferences file"),
        ("[1, 2]", "holds a list"),
        (json.dumps({"device": "tpu", "fp16": "yes", "backbone": "nope"}), "ignoring device"),
        (json.dumps({"recent_folders": "photos"}), "ignoring recent_folders"),
    ],
)
def test_damaged_preferences_give_defaults_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, expected: str
) -> None:
    path = tmp_path / "preferences.json"
    path.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="sketchpad.workspace.preferences"):
        prefs = Preferences.load(path)
    assert prefs == Preferences()
    assert expected in caplog.text and str(path) in caplog.text


def test_a_preferences_file_that_cannot_be_written_is_reported(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the config folder should be")
    dialog = make_dialog(preferences=Preferences.load(blocker / "preferences.json"))
    with qtbot.waitSignal(dialog.preferencesChanged):
        dialog.set_device("cpu")
    title, text = dialog.errors[-1]
    assert title == "Could not save the preferences"
    assert str(blocker / "preferences.json") in text
    assert dialog.preferences.device == "cpu"  # kept for this session


# --- import progress, error buttons, a dark palette (issue 21 item 2) -----------------------------


def test_an_import_shows_bytes_copied_and_can_be_cancelled(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy reports bytes copied / total in the progress bar (determinate), runs off the
    GUI thread, and Cancel stops it: nothing partial is kept, the dialog still works."""
    from sketchpad.vision import weights

    spec_id = "test-dinov2-tiny"
    monkeypatch.setattr(weights, "_CHUNK", 4096)
    monkeypatch.setattr(downloads, "PROGRESS_INTERVAL_S", 0.0)
    source = write_weights(tmp_path / "big.safetensors", spec_id)
    size = source.stat().st_size
    dialog = make_dialog()
    gate = threading.Event()
    report = dialog.job._report

    def gated(done: int, total: int | None) -> None:  # the worker waits after its first bytes
        report(done, total)
        if 0 < done < size:
            gate.wait(10)

    monkeypatch.setattr(dialog.job, "_report", gated)
    with qtbot.waitSignal(dialog.job.progress, check_params_cb=lambda i, d, t: d > 0) as first:
        dialog.import_from(spec_id, source)
        assert dialog.progress_bar.maximum() == 1000  # determinate from the start
    assert first.args[1:] == [4096, size]
    assert dialog.job.busy and dialog.progress_bar.maximum() == 1000
    assert dialog.progress_bar.value() == 4096 * 1000 // size
    assert dialog.progress_bar.format() == f"4.1 KB / {downloads.format_size(size)}"
    assert "4.1 KB copied" in dialog.status_label.text()
    assert dialog.cancel_button.isVisible() and "import" in dialog.cancel_button.toolTip()

    with qtbot.waitSignal(dialog.job.cancelled, timeout=10_000) as cancelled:
        dialog.cancel_button.click()
        gate.set()
    assert cancelled.args == [spec_id]
    assert dialog.wait_until_idle(10)
    folder = imported_dir(get_spec(spec_id))
    assert not folder.exists() or list(folder.iterdir()) == []  # no partial copy
    assert dialog.row_texts(spec_id)["Status"] == "Missing"
    assert dialog.status_label.text() == f"Import of {spec_id} cancelled; nothing was kept."
    assert not dialog.errors

    values: list[int] = []
    dialog.progress_bar.valueChanged.connect(values.append)
    monkeypatch.setattr(dialog.job, "_report", report)
    with qtbot.waitSignal(dialog.weightsChanged, timeout=20_000):
        dialog.import_from(spec_id, source)
    assert values == sorted(values) and values[-1] == 1000
    wait_for_text(qtbot, dialog, spec_id, "Status", "Imported")


def test_errors_offer_buttons_not_commands(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path
) -> None:
    """An offline download names no command to type and offers Retry and Import…; Import…
    asks for a file for the backbone that failed."""
    dialog = make_dialog()
    dialog.select_backbone("test-dinov2-tiny")
    with qtbot.waitSignal(dialog.job.failed, timeout=10_000):
        dialog.start_download("test-clip-tiny")
    title, text = dialog.errors[-1]
    assert "No weights found for test-clip-tiny" in text
    assert "sketchpad models" not in text and "`" not in text
    assert "Import…" in text and "Model Manager…" in text
    assert dialog.offers[-1] == [model_manager.RETRY, model_manager.IMPORT]
    assert dialog.wait_until_idle(10)
    dialog.select_backbone("test-dinov2-tiny")
    dialog.answers = [None]
    dialog.error_action(model_manager.IMPORT)
    assert dialog.asked == [("test-clip-tiny", False)]
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    with qtbot.waitSignal(dialog.job.failed, timeout=10_000):
        dialog.import_from("test-clip-tiny", broken)
    assert dialog.offers[-1] == [model_manager.IMPORT]


def _contrast(a: Any, b: Any) -> float:
    def lum(c: Any) -> float:
        def ch(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("base", ["#2b2b2b", "#1e1e1e", "#353535", "#ffffff", "#f0f0f0"])
def test_status_words_are_readable_on_light_and_dark_palettes(
    make_dialog: Callable[..., Dialog], qtbot: Any, tmp_path: Path, base: str
) -> None:
    from PySide6.QtGui import QColor, QPalette

    dialog = make_dialog()
    with qtbot.waitSignal(dialog.weightsChanged, timeout=20_000):
        dialog.import_from(
            "test-clip-tiny", write_weights(tmp_path / "w.safetensors", "test-clip-tiny")
        )
    wait_for_text(qtbot, dialog, "test-clip-tiny", "Status", "Imported")
    palette = QPalette(dialog.palette())
    dark = QColor(base).lightnessF() < 0.5
    for role, colour in (
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, base),
        (QPalette.ColorRole.Text, "#e6e6e6" if dark else "#000000"),
    ):
        palette.setColor(role, QColor(colour))
    dialog.setPalette(palette)  # as a theme change does: the colours follow at once
    for spec_id, word in (("test-clip-tiny", "Imported"), ("test-dinov2-tiny", "Missing")):
        row = [s.id for s in dialog.specs].index(spec_id)
        item = dialog.table.item(row, model_manager.COL_STATUS)
        assert item.text() == word
        ratio = _contrast(item.foreground().color(), QColor(base))
        assert ratio >= 4.5, f"{word} on {base}: contrast {ratio:.2f}"
    for state in model_manager.STATUS_COLOURS:  # "downloaded" too
        ratio = _contrast(model_manager.status_colour(state, dialog.palette()), QColor(base))
        assert ratio >= 4.5, f"{state} on {base}: contrast {ratio:.2f}"
