"""The search core (no Qt): a query over a photo gallery's features → scores, ranking, masks.

- :mod:`.spec`: :class:`QuerySpec` — what a query asks (sketch, part, words, α, composed
  groups) and its key (what the model sees).
- :mod:`.scoring`: correlation, calibration and **the photo score**, defined once.
- :mod:`.masks`: a photo's mask at any size and threshold, CRF, instances; re-thresholding.
- :mod:`.core`: :class:`SearchCore` — encode once, score a bank, make masks.
- :mod:`.model`: :class:`ModelChoice` → a segmenter (checkpoint metadata in one place).

The window's worker, ``sketchpad segment``, the large view and the exports all go through
here. Import the submodules directly: this package's ``__init__`` stays light (no torch).
"""
