"""Atomic output: every file and directory s4rec writes appears under its final name only once complete.

One helper for the three commands: ``s4rec-train`` writes its checkpoint with :func:`atomic_file`,
``s4rec-score`` its output (through :func:`atomic_file`, wrapped in text and gzip layers by
:mod:`s4rec.writers`), ``s4rec-export`` its artifact directory with :func:`published_directory`. A failure or an
interrupt (``KeyboardInterrupt`` and ``SystemExit`` included) removes the temporary file and leaves whatever
was under the final name untouched. Files get the usual permissions (``0666`` less the umask), not the
``0600`` of ``mkstemp``, so a checkpoint, an artifact and a scored file are all equally readable.

A process killed outright (``kill -9``, a power cut) cannot clean up: its ``.NAME.XXXX.partial`` stays (an
export's is a directory as large as the artifact). So every partial is held under an advisory lock
(``flock``) for as long as its writer lives, and the next write of the same output removes the partials whose
lock no process holds (:func:`reclaim_stale_partials`), never one a live process is writing.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

# What a full disk, a file-size limit (ulimit -f: Python ignores SIGXFSZ, so the write fails) or a quota
# look like to a writer.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}

_terminated_with: int | None = None  # the exit status a SIGTERM asked for


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind the stack like an exception (a plain SIGTERM ends the process without cleanup), so
    every partial file and directory is removed; the commands call it first thing.

    The signal is also remembered: nothing is published after it, even where a library caught the
    ``SystemExit`` (the export was once seen finishing with status 0 after a SIGTERM, under load), and the
    command then exits with ``128 + SIGTERM``.
    """
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum, frame) -> None:
    global _terminated_with
    _terminated_with = 128 + signum
    sys.exit(_terminated_with)


def exit_if_terminated() -> None:
    """``SystemExit(128 + SIGTERM)`` if a SIGTERM arrived (see :func:`exit_on_sigterm`); else nothing."""
    if _terminated_with is not None:
        sys.exit(_terminated_with)


def output_error(error: BaseException, path: str | Path) -> OutputError | None:
    """The one-line :class:`~s4rec.errors.OutputError` for an error that means there is no room to write
    ``path``: an ``OSError`` of a full disk, a file-size limit or a quota, or any error raised while handling
    one (torch's serializer turns the ``OSError`` of its writes into a ``RuntimeError``). None for any other
    error, which should propagate as it is."""
    error = _no_room(error)
    if error is None:
        return None
    reason = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large (a file-size limit)"}
    why = reason.get(error.errno, "disk quota exceeded")
    return OutputError(
        f"{path}: {why} while writing it; nothing was left behind. Free some space (or raise the limit) and "
        "run again, or write the output elsewhere."
    )


def _no_room(error: BaseException | None) -> OSError | None:
    """The no-room ``OSError`` in ``error``'s chain of causes and contexts, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in _NO_ROOM:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def file_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open()`` would give a new file."""
    return 0o666 & ~_umask()


def directory_mode() -> int:
    """``0o777`` less the process's umask: the mode ``mkdir()`` would give a new directory."""
    return 0o777 & ~_umask()


def _umask() -> int:
    umask = os.umask(0)  # the only way to read it; set back at once
    os.umask(umask)
    return umask


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file that appears under ``path`` only if the block succeeds.

    Writes ``.NAME.XXXX.partial`` in the same directory (so the final rename is atomic), fsyncs it and
    renames it over ``path``; on any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reclaim_stale_partials(path)
    tmp, f, lock = None, None, None
    try:
        # A SIGTERM (exit_on_sigterm) that arrived between the partial's creation and this block would leave it
        # behind (seen once in a CI run of tests/test_score_cli.py): it waits until the name is known.
        with _sigterm_deferred():
            fd, tmp = _locked(lambda: tempfile.mkstemp(prefix=f".{path.name}.", suffix=_PARTIAL, dir=path.parent))
        lock = os.dup(fd)  # the lock belongs to the open file, so it lasts until this is closed too: past the rename
        f = os.fdopen(fd, "wb")
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        exit_if_terminated()
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            if f is not None:
                f.close()
        except OSError:  # the close's own flush fails on a full disk too
            pass
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if not isinstance(e, OutputError):
            full = output_error(e, path)
            if full is not None:
                raise full from None
        raise
    finally:
        if lock is not None:
            os.close(lock)


@contextmanager
def _sigterm_deferred() -> Iterator[None]:
    """SIGTERM held back for the block (POSIX; elsewhere nothing changes): it is delivered, and unwinds the
    stack, when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def temporary_directory_beside(path: str | Path) -> Path:
    """A new private directory ``.NAME.XXXX.partial`` next to ``path``, to fill and then publish (unlocked: see
    :func:`published_directory`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=_PARTIAL, dir=path.parent))


@contextmanager
def published_directory(output: str | Path) -> Iterator[Path]:
    """A new directory beside ``output`` to fill; :func:`publish_directory` gives it the name ``output`` when the
    block ends normally, and it is removed (``output`` untouched) when the block raises or is interrupted.

    The partials of ``output`` that earlier writers left when they were killed are removed first
    (:func:`reclaim_stale_partials`); this one is locked until the block ends, so that no other writer
    takes it for stale."""
    reclaim_stale_partials(output)

    def make() -> tuple[int | None, str]:
        work = temporary_directory_beside(output)
        try:
            return os.open(work, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)), str(work)
        except OSError:  # Windows opens no directory: no lock there, and nothing is reclaimed
            return None, str(work)

    fd, name = _locked(make)
    work = Path(name)
    try:
        yield work
        publish_directory(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock after the rename: a reclaimer that finds it unlocked finds no partial


_PARTIAL = ".partial"


def reclaim_stale_partials(output: str | Path) -> list[Path]:
    """Remove the ``.NAME.XXXX.partial`` files and directories of ``output`` (NAME its name) whose writer is
    gone: killed before it could remove them. A partial is stale when no process holds its lock (every writer
    of this release locks its partial for its whole life); one a live process writes is never touched, nor
    one whose lock cannot be tested (a file system without ``flock``, e.g. some network mounts, or Windows,
    where nothing is reclaimed). Returns the paths removed. Every write of ``output`` runs it first; to clean
    up without writing: ``python -c "import s4rec.files as f; print(f.reclaim_stale_partials('OUTPUT'))"``.

    A writer of an older release (which did not lock) that writes the same output at that moment would lose
    its partial and fail: run one release at a time per output.
    """
    output = Path(output)
    pattern = re.compile(re.escape(f".{output.name}.") + r"[A-Za-z0-9_]+" + re.escape(_PARTIAL))
    try:
        entries = list(os.scandir(output.parent))
    except OSError:  # no such directory yet, or unreadable: nothing of ours there
        return []
    removed = []
    for entry in entries:
        if not pattern.fullmatch(entry.name) or entry.is_symlink():
            continue
        path = Path(entry.path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:  # gone meanwhile (published, or removed by its writer), or unreadable
            continue
        try:
            if _lock(fd, wait=False) and _same_file(fd, path):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def _locked(make) -> tuple[int | None, str]:
    """``make()`` gives ``(fd, path)`` of a new partial; lock it for the life of ``fd``. A reclaimer that found
    it in the instant between its creation and the lock has removed it: then make another."""
    while True:
        fd, path = make()
        if fd is None or _lock(fd, wait=True) is None or _same_file(fd, Path(path)):  # locked, or no locks here
            return fd, path
        os.close(fd)


def _lock(fd: int, wait: bool) -> bool | None:
    """Take the exclusive advisory lock of ``fd``: True when taken, False when another open file holds it
    (``wait=False``), None when this system or file system has no such lock (then nothing is reclaimed)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # e.g. ENOLCK, EBADF on a network file system that emulates flock
        return None
    return True


def _same_file(fd: int, path: Path) -> bool:
    """``path`` still names the file or directory open as ``fd`` (not removed, not replaced)."""
    try:
        here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def publish_directory(work: str | Path, output: str | Path) -> None:
    """Give the finished directory ``work`` the name ``output``; an existing ``output`` is replaced, not merged.

    Every file is fsynced first, and the directory gets the usual permissions (``mkdtemp`` makes it private).
    An existing ``output`` is swapped with ``work`` in one atomic step where the system can (Linux
    ``renameat2(RENAME_EXCHANGE)``), so a crash leaves either the old or the new artifact under the name.
    Elsewhere it takes two renames, the old one moved aside first into ``.NAME.XXXX.old/``; a crash between
    them leaves the old artifact there, and :func:`recover_interrupted` (run by the next export) puts it back.
    """
    work, output = Path(work), Path(output)
    exit_if_terminated()
    for path in work.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    os.chmod(work, directory_mode())
    if not output.exists() and not output.is_symlink():
        os.replace(work, output)
    elif _exchange(work, output):
        shutil.rmtree(work, ignore_errors=True)  # now the old artifact
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=_OLD, dir=output.parent))
        os.replace(output, old / output.name)
        os.replace(work, output)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_directory(output.parent)


_OLD = ".old"


def interrupted_backup(output: str | Path) -> Path | None:
    """The previous artifact a forced replacement of ``output`` moved aside and did not finish with (a crash
    between its two renames), when ``output`` itself is missing; else None."""
    output = Path(output)
    if output.exists() or not output.parent.is_dir():
        return None
    candidates = sorted(output.parent.glob(f".{glob.escape(output.name)}.*{_OLD}/{glob.escape(output.name)}"))
    return candidates[-1] if candidates else None


def recover_interrupted(output: str | Path) -> Path | None:
    """Put back the artifact an interrupted replacement of ``output`` left aside (see :func:`publish_directory`);
    returns where it was, or None when there was nothing to recover."""
    backup = interrupted_backup(output)
    if backup is None:
        return None
    os.replace(backup, output)
    shutil.rmtree(backup.parent, ignore_errors=True)
    return backup


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the paths ``a`` and ``b`` (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where
    the system or the file system cannot, so that the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # no glibc renameat2 (musl, glibc < 2.28)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
