"""The engine layer (DESIGN §2, §6): the long-lived inference worker and its GUI-side handle.

Modules:
    requests: immutable requests (LoadModel, OpenFolder, QueryRequest, MaskRequest) and
        results (ModelInfo, FolderSummary, QueryResult, MaskResult), each with a generation.
    inbox: the thread-safe inbox (newest query wins, the rest in order; stop and cancel).
    session: an open folder's gallery, growing as indexing commits batches.
    oom: out-of-memory fallback (smaller batches, then the CPU).
    worker: ``InferenceWorker``, the QObject on its own QThread that owns the model.
    client: ``Engine``, what the GUI uses: numbers requests, filters stale results, joins the
        thread on shutdown.
    labelling: the scene-labelling service (its own worker thread and model).

Only this layer and ``ui`` import Qt; this layer never imports ``ui``. Import the submodules
(``from sketchpad.engine.client import Engine``): this package imports nothing eagerly, so
that importing it stays light.
"""
