"""Paths inside a run or output folder, treated as untrusted input.

A run folder may come from anyone (an archive, a shared disk, a bug report), so nothing in it may
decide a path outside it. Every read or write of a file under such a ROOT goes through `inside`
(and the readers below, which use it):

- the name is relative, with no "..", ".", empty or NUL component;
- no component below ROOT is a symbolic link, and every folder on the way is a real folder;
- a file that is read is a regular file, opened with O_NOFOLLOW|O_NONBLOCK (a FIFO never blocks)
  and checked with fstat, and no more than a size cap is read.

ROOT itself is the path the user named and is trusted as such (it may be a link the user made).
Anything else is refused with one `UnsafePathError` line that names the path. The walk is done
component by component with `openat`, so a link swapped in during the walk is refused too.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from gensemble.errors import GensembleError, shown

MAX_READ = 64 * 2**20  # no artefact gensemble writes comes near this


class UnsafePathError(GensembleError):
    """A path inside a run or output folder leads outside it, or is not a regular file or folder."""


def _fail(root: Path, rel: str, what: str) -> UnsafePathError:
    return UnsafePathError(
        f"{shown(str(Path(root) / rel), 120)} {what}; a run folder may hold only regular files and "
        "folders inside it: remove or replace that entry"
    )


def name_parts(rel: str | os.PathLike[str]) -> tuple[str, ...]:
    """The components of a relative name; ValueError for an absolute name, "..", "." or NUL."""
    text = os.fspath(rel)
    if not isinstance(text, str) or not text or "\0" in text or len(text) > 4096:
        raise ValueError(f"{shown(text)} is not a relative file name")
    pure = PurePosixPath(text)
    if pure.is_absolute():
        raise ValueError(f"{shown(text)} is an absolute path")
    parts = tuple(text.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{shown(text)} leaves its folder or has an empty component")
    return parts


def relative(root: str | Path, path: str | Path) -> str:
    """`path` (absolute under ROOT, or relative to it) as a name relative to ROOT."""
    root, path = Path(root), Path(path)
    if path.is_absolute() or path.parts[: len(root.parts)] == root.parts:
        try:
            path = path.relative_to(root)
        except ValueError:
            raise UnsafePathError(f"{shown(str(path), 120)} is not inside {shown(str(root), 120)}") from None
    return path.as_posix()


def _split(root: str | Path, path: str | Path) -> tuple[Path, str, tuple[str, ...]]:
    """(ROOT, the name relative to it, its components), or UnsafePathError for a name that leaves it."""
    root = Path(root)
    rel = relative(root, path)
    try:
        return root, rel, name_parts(rel)
    except ValueError as exc:
        raise UnsafePathError(f"{exc}; a run folder's entries are plain names inside it") from None


def _open_dir(root: Path, parts: tuple[str, ...], create: bool = False) -> int:
    """An fd of ROOT/parts..., each component opened with O_NOFOLLOW (made when `create`)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _fail(
                        root, "/".join(parts[: i + 1]), "is a symbolic link or not a folder"
                    ) from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def inside(root: str | Path, path: str | Path, kind: str = "file", create_parents: bool = False) -> Path:
    """ROOT/path, after checking that it stays inside ROOT with no link on the way.

    `kind` is what the last component must be when it exists: "file" (a regular file), "dir" (a
    real folder), or "new" (anything that a rename may replace: a file or a link, never a folder).
    With `create_parents`, missing folders on the way are made (never through a link)."""
    root, rel, parts = _split(root, path)
    try:
        fd = _open_dir(root, parts[:-1], create=create_parents)
    except FileNotFoundError:
        return root / rel  # nothing there yet: a reader finds nothing, a writer makes the folders
    try:
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return root / rel
        if kind == "dir" and not stat.S_ISDIR(st.st_mode):
            raise _fail(root, rel, "is a symbolic link or not a folder")
        if kind == "file" and not stat.S_ISREG(st.st_mode):
            raise _fail(root, rel, "is not a regular file")
        if kind == "new" and stat.S_ISDIR(st.st_mode):
            raise _fail(root, rel, "is a folder where a file belongs")
    finally:
        os.close(fd)
    return root / rel


def exists(root: str | Path, path: str | Path) -> bool:
    """Whether ROOT/path is a regular file inside ROOT (a link or special file raises)."""
    return inside(root, path).is_file()


def read_bytes(root: str | Path, path: str | Path, limit: int = MAX_READ) -> bytes | None:
    """The bytes of the regular file ROOT/path, or None when it does not exist; never follows a
    link, never blocks on a FIFO, never reads more than `limit` bytes (a larger file is refused)."""
    root, rel, parts = _split(root, path)
    try:
        dfd = _open_dir(root, parts[:-1])
    except FileNotFoundError:
        return None
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise _fail(root, rel, "is a symbolic link or not a regular file") from None
        raise
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _fail(root, rel, "is not a regular file")
        if st.st_size > limit:
            raise _fail(root, rel, f"is over {limit // 2**20} MB, larger than any file gensemble writes")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while we read
                raise _fail(root, rel, f"is over {limit // 2**20} MB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(root: str | Path, path: str | Path, limit: int = MAX_READ) -> str | None:
    """`read_bytes` decoded as UTF-8 (undecodable bytes replaced), or None when absent."""
    raw = read_bytes(root, path, limit)
    return None if raw is None else raw.decode(errors="replace")


def files(root: str | Path, folder: str | Path, pattern: str = "*") -> Iterator[Path]:
    """Regular files matching `pattern` in the real folder ROOT/folder (none when it is absent);
    links and special files among them are skipped, and a linked folder is refused."""
    root = Path(root)
    where = inside(root, folder, kind="dir") if relative(root, folder) != "." else root
    if not where.is_dir():
        return iter(())
    return iter(
        sorted(p for p in where.glob(pattern) if not p.is_symlink() and p.is_file() and "/" not in pattern)
    )


def remove_files(root: str | Path, folder: str | Path, prefix: str) -> int:
    """Delete the regular files of ROOT/folder whose names start with `prefix`; how many went. The
    folder is opened component by component without following a link, then listed and emptied
    through that one handle, so no link, planted or swapped in after a check, points the deletion
    elsewhere. An absent folder deletes nothing."""
    root, _, parts = _split(root, folder)
    try:
        dfd = _open_dir(root, parts)
    except FileNotFoundError:
        return 0
    gone = 0
    try:
        for entry in os.scandir(dfd):
            if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.name, dir_fd=dfd)
                gone += 1
    finally:
        os.close(dfd)
    return gone


def open_regular(root: str | Path, path: str | Path, flags: int, mode: int = 0o666) -> int:
    """An fd of the regular file ROOT/path opened with `flags` (plus O_NOFOLLOW|O_NONBLOCK), for
    lock files and logs: a link, FIFO or device there is refused."""
    root = Path(root)
    rel = relative(root, path)
    parts = name_parts(rel)
    dfd = _open_dir(root, parts[:-1])
    try:
        fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=dfd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise _fail(root, rel, "is a symbolic link or not a regular file") from None
        raise
    finally:
        os.close(dfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _fail(root, rel, "is not a regular file")
    return fd
