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

import numpy as np

from .errors import CheckpointError

FORMAT = "optimizers.checkpoint"
VERSION = 2  # 2: results carry a Reason; first-order back-off state keeps the loss


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


def check_writable(path) -> None:
    """Raise CheckpointError now, before any work, if ``path`` cannot hold a checkpoint: it is a
    directory, or its folder cannot be created or written to."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise CheckpointError(f"checkpoint must be a file path, got {path!r}") from None
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory; give a file path such as {os.path.join(path, 'fit.ckpt')}")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".probe", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be written ({err.strerror or err}); pass a path in a "
                              "folder you can write to") from None


def load(path):
    """The payload saved at ``path``, or ``None`` if there is no file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except FileNotFoundError:
        return None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError,
            ValueError) as err:
        raise CheckpointError(f"{path} is empty, truncated or corrupt ({type(err).__name__}: {err}); "
                              "delete it to start the run over, or pass another checkpoint path") from None
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


class EvaluationTape:
    """Append-only file of objective evaluations, fixed-size records ``(key of x, loss, grad)``.

    Records are kept in memory until :meth:`commit` appends them to the file and fsyncs it; a
    checkpoint written after the commit then stores ``committed``, and reopening the tape with
    that count drops whatever a killed process appended after its last checkpoint. File I/O
    stays linear in the run's length, unlike re-pickling the whole tape at every checkpoint.
    """

    def __init__(self, path, n, committed=0):
        self.path, self.n, self.committed = os.fspath(path), n, committed
        self.record_size = 16 + 8 + 8 * n
        self.pending = []
        exists = os.path.exists(self.path)
        if committed and not exists:
            raise CheckpointError(f"{self.path}, the evaluation tape of the checkpoint, is "
                                  "missing; delete the checkpoint to start over")
        self.file = open(self.path, "r+b" if exists else "w+b")  # noqa: SIM115 -- kept open; close()
        size = self.file.seek(0, os.SEEK_END)
        if size < committed * self.record_size:
            self.file.close()
            raise CheckpointError(f"{self.path} holds fewer evaluations than its checkpoint "
                                  "says; delete the checkpoint to start over")
        self.file.truncate(committed * self.record_size)

    @staticmethod
    def key(x) -> bytes:
        """16-byte fingerprint of ``x``'s exact bytes."""
        return hashlib.sha256(x.tobytes()).digest()[:16]

    def read(self, i):
        """Committed record ``i`` as ``(key, loss, grad)``."""
        self.file.seek(i * self.record_size)
        raw = self.file.read(self.record_size)
        values = np.frombuffer(raw, dtype=np.float64, offset=16)
        return raw[:16], float(values[0]), values[1:].copy()

    def append(self, key, loss, grad):
        self.pending.append(key + np.float64(loss).tobytes() + grad.astype(np.float64).tobytes())

    def truncate(self, count):
        """Forget every record from ``count`` on."""
        self.pending = []
        self.committed = min(self.committed, count)
        self.file.truncate(self.committed * self.record_size)

    def commit(self):
        """Append the pending records durably; returns the committed count."""
        if self.pending:
            self.file.seek(self.committed * self.record_size)
            self.file.write(b"".join(self.pending))
            self.file.flush()
            os.fsync(self.file.fileno())
            self.committed += len(self.pending)
            self.pending = []
        return self.committed

    def close(self):
        self.file.close()
