"""File-system access for sources, datasets and sample libraries: local paths or URIs, through pyarrow.fs.

A local path stays a plain path (soundfile and pyarrow read it directly, the
fastest way); a URI such as ``s3://bucket/prefix`` goes through the matching
pyarrow file system, so the same code reads and writes object stores. One type,
:class:`Location`, serves the ingest (its sources and datasets) and the render
job (its libraries, written file by file with :meth:`Location.write_atomic`).
"""
from __future__ import annotations

import io
import mimetypes
import os
import posixpath
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import UserError

# In the name of a file being written (then renamed): what an interrupted write leaves behind.
TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class Location:
    """A folder on some file system (picklable: it travels to Ray tasks and actors).

    Attributes:
        fs: the pyarrow file system (picklable, so it travels to Ray tasks).
        path: the folder's path inside ``fs`` (no trailing slash).
        uri: what the user gave, for messages and the manifest.
    """

    fs: pafs.FileSystem
    path: str
    uri: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def atomic_put(self) -> bool:
        """Object stores publish an object only when its upload completes: no rename needed."""
        return self.fs.type_name in ("s3", "gcs")

    def join(self, *parts: str) -> str:
        """The path inside ``fs`` of ``parts`` under this folder."""
        return posixpath.join(self.path, *parts)

    def display(self, *parts: str) -> str:
        """A path a person can paste: local absolute path or URI."""
        parts = tuple(p for p in parts if p)
        return posixpath.join(self.uri.rstrip("/"), *parts) if parts else self.uri

    def info(self, *parts: str) -> pafs.FileInfo:
        return self.fs.get_file_info(self.join(*parts))

    def exists(self, *parts: str) -> bool:
        return self.info(*parts).type != pafs.FileType.NotFound

    def is_dir(self, *parts: str) -> bool:
        return self.info(*parts).type == pafs.FileType.Directory

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.join(*parts)) as f:
            return f.read()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write ``data`` in place (a reader may see it half written: see :meth:`write_atomic`)."""
        with self.fs.open_output_stream(self.join(*parts)) as f:
            f.write(data)

    def write_atomic(self, data: bytes, *parts: str) -> None:
        """Write ``data`` so that the file appears only complete.

        A local or HDFS-like file system gets a temporary name (with :data:`TMP_MARK`)
        then a rename; an object store gets one PUT, which is atomic, with the file's
        media type, so that a browser plays a library's page straight from the store.
        """
        final = self.join(*parts)
        if self.atomic_put:
            kind = mimetypes.guess_type(final)[0]
            stream = self.fs.open_output_stream(final, metadata={"Content-Type": kind} if kind else None)
            stream.write(data)
            stream.close()
            return
        head, name = posixpath.split(final)
        tmp = posixpath.join(head, f".{name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            with self.fs.open_output_stream(tmp) as stream:
                stream.write(data)
            self.fs.move(tmp, final)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise

    def delete(self, *parts: str) -> None:
        """Delete one file."""
        self.fs.delete_file(self.join(*parts))

    def makedirs(self, *parts: str) -> None:
        """Create a sub-folder (and its parents) where folders exist (object stores have none)."""
        if not self.atomic_put:
            self.fs.create_dir(self.join(*parts), recursive=True)

    def open_audio(self, *parts: str):
        """What soundfile should open: the path for local files, else the bytes in memory."""
        if self.is_local:
            return self.join(*parts)
        return io.BytesIO(self.read_bytes(*parts))

    def list_names(self, *parts: str) -> list[str]:
        """Base names of the plain files directly in a sub-folder (sorted)."""
        if self.is_local:
            # os.scandir reads the types from the directory itself: several times
            # faster than pyarrow's FileInfo per file on NSynth's 289,205 WAVs.
            try:
                with os.scandir(self.join(*parts)) as entries:
                    return sorted(e.name for e in entries if e.is_file())
            except FileNotFoundError:
                return []
        selector = pafs.FileSelector(self.join(*parts), allow_not_found=True, recursive=False)
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(selector)
                      if i.type == pafs.FileType.File)

    def list_files(self) -> list[str]:
        """Every file under the folder, at any depth, as sorted paths relative to it."""
        selector = pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
        prefix = self.path.rstrip("/") + "/" if self.path else ""
        return sorted(i.path[len(prefix):] for i in self.fs.get_file_info(selector)
                      if i.type == pafs.FileType.File and i.path.startswith(prefix))

    def sibling(self, name: str) -> "Location":
        """Another folder beside this one (same parent, same file system)."""
        parent = posixpath.dirname(self.path)
        uri_parent = self.uri.rstrip("/").rsplit("/", 1)[0] if "/" in self.uri.rstrip("/") else "."
        return Location(self.fs, posixpath.join(parent, name), f"{uri_parent}/{name}")


def resolve(uri_or_path: str | os.PathLike, flag: str | None = None) -> Location:
    """A :class:`Location` for a local path (made absolute) or a file-system URI.

    Args:
        uri_or_path: ``/data/nsynth``, ``relative/dir``, ``file:///x`` or ``s3://bucket/x``.
        flag: the command-line flag that gave it (``--out``), to name in errors.

    Returns:
        the location; local paths are absolute so that Ray workers find them too.
    Raises:
        UserError when no file system opens the URI.
    """
    text = os.fspath(uri_or_path)
    if "://" not in text:
        path = os.path.abspath(os.path.expanduser(text))
        return Location(pafs.LocalFileSystem(), path.replace(os.sep, "/"), path)
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowException, ValueError, OSError) as err:
        shown = _without_secrets(text)
        raise UserError(f"{flag + ' ' if flag else ''}{shown}: no file system opens it ({err})") from None
    return Location(fs, path.rstrip("/"), _without_secrets(text).rstrip("/"))


def _without_secrets(uri: str) -> str:
    """The URI without user info and query (``s3://key:secret@b/x?endpoint_override=...`` -> ``s3://b/x``).

    A URI may carry credentials and endpoint options for pyarrow; what goes into
    messages and manifests must not.
    """
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
