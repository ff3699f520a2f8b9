"""Host-side access to the sandbox's directories (run/, data/, outputs/), which it can write.

The sandbox may plant a symbolic link, a FIFO, a device node, a hard link to a host
file or a sparse giant wherever it can write. So every access here goes through a
descriptor of the directory, opened with O_DIRECTORY|O_NOFOLLOW, and names are
opened, created and removed relative to it with O_NOFOLLOW: no link is ever
followed, and a swap between a check and a use cannot redirect it, because the
checks are made with fstat on the descriptor that is then read. The directory's
own parents are the host's (the sandbox root), so only the last component needs
the no-follow guarantee.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# A file this large with less than 1/SPARSE_RATIO of it on disk is sparse: refused, since
# it reads as a giant of zeros. The floor keeps tiny files (inline on some file systems) out.
SPARSE_FLOOR = 1024 * 1024
SPARSE_RATIO = 8
MAX_CLEAR_DEPTH = 32  # deeper directories are moved up before removal (no deep recursion)
MAX_CLEAR_PASSES = 100  # bounds the work when something keeps writing while we clear
_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
          (stat.S_ISDIR, "a directory"))


class Refused(Exception):
    """A file the host will not read; ``str()`` says why, for the user."""


@contextlib.contextmanager
def open_dir(path: Path | str, dir_fd: int | None = None) -> Iterator[int]:
    """A descriptor of directory ``path``, which must not be a link; closed on exit."""
    fd = os.open(path, DIR_FLAGS, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def list_names(dir_fd: int, limit: int) -> tuple[list[str], bool]:
    """Up to ``limit`` names in the directory, sorted, and whether there were more."""
    names = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if len(names) == limit:
                return sorted(names), True
            names.append(entry.name)
    return sorted(names), False


def read_file(dir_fd: int, name: str, limit: int) -> bytes:
    """The bytes of regular file ``name`` (at most ``limit``); raises Refused saying why not."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise Refused(_open_failure(dir_fd, name, exc)) from None
    try:
        info = os.fstat(fd)
        refuse_unless_plain(info, limit)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the check
        raise Refused(f"larger than {limit:,} bytes")
    return data


def read_small(directory: Path, name: str, limit: int) -> bytes | None:
    """``read_file`` for one file: its bytes, or None when missing or refused."""
    try:
        with open_dir(directory) as dir_fd:
            return read_file(dir_fd, name, limit)
    except (OSError, Refused):
        return None


def refuse_unless_plain(info: os.stat_result, limit: int) -> None:
    """Raise Refused unless ``info`` is a regular, single-linked, dense file within ``limit``."""
    for is_kind, kind in _KINDS:
        if is_kind(info.st_mode):
            raise Refused(f"{kind}, not a regular file")
    if not stat.S_ISREG(info.st_mode):
        raise Refused("not a regular file")
    if info.st_nlink > 1:  # could be a host file the sandbox linked to (same file system)
        raise Refused("a hard link to another file")
    if info.st_size > limit:
        raise Refused(f"larger than {limit:,} bytes ({info.st_size:,})")
    if info.st_size >= SPARSE_FLOOR and info.st_blocks * 512 * SPARSE_RATIO < info.st_size:
        raise Refused("a sparse file (mostly holes)")


def write_new(directory: Path, name: str, text: str | bytes, mode: int = 0o644) -> None:
    """Write ``text`` to ``directory/name``, replacing whatever entry is there, never a target.

    Whatever the sandbox left under the name (a link to a host file, say) is
    unlinked, not followed, and the file is created with O_EXCL|O_NOFOLLOW, so a
    link planted between the two steps makes this fail instead of writing through it.
    """
    with open_dir(directory) as dir_fd:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            with open_dir(name, dir_fd=dir_fd) as sub:
                _empty(sub)
            os.rmdir(name, dir_fd=dir_fd)
        fd = os.open(name, WRITE_FLAGS, mode, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)


def copy_out(source: Path, target: Path, allowed: Callable[[str], bool], max_files: int,
             file_limit: int, total_limit: int) -> list[str]:
    """Copy the plain files directly in ``source`` (which the sandbox wrote) into ``target``.

    Each is read with ``read_file`` (no link followed, no FIFO, hard link or sparse file,
    within ``file_limit``) and written with ``write_new``; names ``allowed`` refuses,
    files past ``max_files`` or ``total_limit`` and directories are left out. Returns
    "name: why" for each file left out.
    """
    left_out: list[str] = []
    total = copied = 0
    with open_dir(source) as dir_fd:
        names, more = list_names(dir_fd, max_files * 10)
        if more:
            left_out.append(f"only the first {max_files * 10} entries were looked at")
        for name in names:
            if not allowed(name):
                left_out.append(f"{name!r}: name or type not allowed")
                continue
            try:
                data = read_file(dir_fd, name, file_limit)
            except Refused as exc:
                left_out.append(f"{name}: {exc}")
                continue
            if copied == max_files or total + len(data) > total_limit:
                left_out.append(f"{name}: over the {max_files} files or {total_limit:,} bytes "
                                f"kept")
                continue
            write_new(target, name, data)
            total += len(data)
            copied += 1
    return left_out


def clear_dir(directory: Path) -> None:
    """Remove everything inside ``directory`` with unlinkat/rmdir; links are removed, not followed.

    Directories nested deeper than ``MAX_CLEAR_DEPTH`` are first moved up to the top,
    so a deliberately deep tree costs neither deep recursion nor one descriptor per level.
    """
    with open_dir(directory) as top:
        _empty(top)


def _empty(top: int) -> None:
    for _ in range(MAX_CLEAR_PASSES):
        if not _clear(top, top, 0):
            return


def _clear(top: int, dir_fd: int, depth: int) -> bool:
    """Empty ``dir_fd``; True when something was moved up to ``top`` for another pass."""
    moved = False
    for name in os.listdir(dir_fd):
        try:
            os.unlink(name, dir_fd=dir_fd)
            continue
        except FileNotFoundError:
            continue
        except (IsADirectoryError, PermissionError):  # Linux says EISDIR, POSIX allows EPERM
            pass
        if depth >= MAX_CLEAR_DEPTH:
            os.rename(name, f".deep-{uuid.uuid4().hex}", src_dir_fd=dir_fd, dst_dir_fd=top)
            moved = True
            continue
        try:
            sub = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):  # swapped meanwhile
                continue
            raise
        try:
            moved = _clear(top, sub, depth + 1) or moved
        finally:
            os.close(sub)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(name, dir_fd=dir_fd)
    return moved


@dataclass
class Usage:
    """What a directory tree holds, counted without following links."""

    bytes: int = 0  # allocated on disk, so a sparse file counts what it really holds
    entries: int = 0  # files, directories, links, anything with a name
    too_deep: bool = False  # nested deeper than MAX_CLEAR_DEPTH: not walked, counted as over

    def over(self, max_bytes: int, max_entries: int) -> bool:
        return self.too_deep or self.bytes > max_bytes or self.entries > max_entries


def usage(directory: Path, max_bytes: int, max_entries: int) -> Usage:
    """Count what ``directory`` holds; the walk stops as soon as either cap is passed, so a
    tree of a million files costs no more than one just over the cap."""
    counted = Usage()
    with open_dir(directory) as top:
        _count(top, 0, counted, max_bytes, max_entries)
    return counted


def _count(dir_fd: int, depth: int, counted: Usage, max_bytes: int, max_entries: int) -> None:
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if counted.over(max_bytes, max_entries):
                return
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile
                continue
            counted.entries += 1
            counted.bytes += info.st_blocks * 512
            if not stat.S_ISDIR(info.st_mode):
                continue
            if depth >= MAX_CLEAR_DEPTH:
                counted.too_deep = True
                return
            try:
                sub = os.open(entry.name, DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):  # swapped meanwhile
                    continue
                raise
            try:
                _count(sub, depth + 1, counted, max_bytes, max_entries)
            finally:
                os.close(sub)


def _open_failure(dir_fd: int, name: str, exc: OSError) -> str:
    """Why ``name`` could not be opened: what it is (a link, a socket), or the OS's reason."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return "gone before it could be read"
    kind = next((kind for is_kind, kind in _KINDS if is_kind(mode)), None)
    if kind == "a symbolic link":
        return kind
    if kind:
        return f"{kind}, not a regular file"
    return f"could not be opened ({os.strerror(exc.errno) if exc.errno else exc})"
