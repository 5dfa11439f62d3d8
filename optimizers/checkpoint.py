"""Atomic checkpoint files for resumable optimisations.

A checkpoint is a pickled dict. It is written to a temporary file in the same directory,
flushed and fsynced, then moved over the old file with ``os.replace``, so a process killed at any
moment leaves either the previous checkpoint or the new one, never a torn file. Pickle runs code
on load: only resume from checkpoints you wrote.
"""

import hashlib
import os
import pickle
import tempfile

from .errors import CheckpointError

FORMAT = "optimizers.checkpoint"
VERSION = 1


def save(path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (and durably, where the OS allows)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    data = pickle.dumps({"format": FORMAT, "version": VERSION, **payload},
                        protocol=pickle.HIGHEST_PROTOCOL)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def load(path):
    """The payload saved at ``path``, or ``None`` if there is no file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an optimizers checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this code "
                              f"reads version {VERSION}")
    return payload


def digest(array) -> str:
    """A short fingerprint of an array's exact bytes, shape and dtype."""
    h = hashlib.sha256()
    h.update(str((array.shape, array.dtype.str)).encode())
    h.update(array.tobytes())
    return h.hexdigest()[:32]
