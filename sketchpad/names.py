"""File names as the OS gives them, stored losslessly and shown readably.

On POSIX a file name is bytes. Python hands them over as ``str`` decoded with the file system
encoding and ``surrogateescape``: bytes that are not valid UTF-8 (names copied from old FAT
media or Latin-1 systems) become lone surrogates (``b"caf\\xe9"`` → ``"caf\\udce9"``). Such a
``str`` works with every ``os`` call but cannot be encoded as UTF-8, so it must neither be
bound into SQLite as text, nor written to a UTF-8 file or stream, nor handed to Qt as it is.

- :func:`name_bytes` / :func:`name_from_bytes`: the exact bytes of a name and back (what the
  feature cache stores: lossless, so NFC and NFD spellings of one name stay two names, as they
  are two files on Linux).
- :func:`display_name`: the one way a name is shown, in messages, logs, the command line and
  the window: valid UTF-8 unchanged (emoji included), each undecodable byte as ``\\xNN`` (so
  two names differing only there still look different), control characters (a newline in a
  name) as ``\\xNN`` too. It is for reading only; never open a file by its display name.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePath

__all__ = ["display_name", "name_bytes", "name_from_bytes"]

# C0 and C1 controls and DEL: they would break a line of output or a log record.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def name_bytes(name: str | PurePath) -> bytes:
    """The bytes of a file name or path, as the OS has them (``os.fsencode``)."""
    return os.fsencode(name)


def name_from_bytes(raw: bytes) -> str:
    """The ``str`` Python uses for these name bytes (``os.fsdecode``; inverse of
    :func:`name_bytes`)."""
    return os.fsdecode(bytes(raw))


def display_name(name: str | bytes | PurePath) -> str:
    """A file name or path as readable text that can always be printed, logged or shown.

    Valid UTF-8 is kept as it is (NFC and NFD alike); an undecodable byte becomes ``\\xNN``
    and a control character ``\\xNN`` as well. The result encodes as UTF-8 without error.
    """
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    text = raw.decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
