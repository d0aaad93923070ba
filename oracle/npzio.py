"""Reading and writing ``.npz`` archives of untrusted origin.

``write_npz`` writes a reproducible archive (sorted members, fixed timestamps, no pickle), so
the same arrays always give the same bytes and the same sha256.

``read_npz`` never runs pickle (``np.load(..., allow_pickle=False)``), refuses object,
structured and string arrays, and turns every way a file can be broken (missing, truncated,
not a zip, a member that is not an ``.npy``, an oversized archive) into an ``InputError`` that
names the file and the key, never a traceback.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

MAX_BYTES = 1 << 30  # refuse archives that unpack to more than 1 GiB
NUMERIC_KINDS = "biuf"  # bool, int, uint, float


class InputError(Exception):
    """Input that cannot be read: names the file, the key (or None) and what is wrong."""

    def __init__(self, file, key, message):
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file = str(file)
        self.key = key
        self.message = message


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_npz(path, arrays: dict) -> None:
    """Write ``{key: array}`` to ``path`` (written to a temporary file, then renamed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arrays[key], order="C"),
                                          allow_pickle=False)
    os.replace(tmp, path)


def read_npz(path) -> dict:
    """``{key: numpy array}`` from an untrusted archive, or ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise InputError(path, None, f"not a readable .npz (zip) archive, truncated or "
                                     f"corrupt: {err}") from None
    if sum(i.file_size for i in infos) > MAX_BYTES:
        raise InputError(path, None, f"unpacks to more than {MAX_BYTES} bytes; refused")
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise InputError(path, info.filename, "member is not an .npy array")
    arrays = {}
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:
        raise InputError(path, None, f"cannot be opened as .npz: {err}") from None
    with archive:
        for key in archive.files:
            try:
                value = archive[key]
            except ValueError as err:
                if "pickle" in str(err).lower() or "object" in str(err).lower():
                    raise InputError(path, key, "object array (needs pickle); only plain "
                                                "numeric arrays are accepted") from None
                raise InputError(path, key, f"unreadable array: {err}") from None
            except Exception as err:  # CRC errors, truncation inside a member, zlib errors
                raise InputError(path, key, f"truncated or corrupt array: "
                                            f"{type(err).__name__}: {err}") from None
            if not isinstance(value, np.ndarray) or value.dtype.kind not in NUMERIC_KINDS:
                raise InputError(path, key, f"dtype {getattr(value, 'dtype', type(value))} is "
                                            "not a plain numeric dtype (bool, int, float)")
            arrays[key] = value
    return arrays
