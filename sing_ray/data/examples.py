"""examples.json as a stream: its entries parsed one at a time, and read back by byte range.

NSynth's examples.json maps each note_str to its metadata: 305,979 entries, about
100 MB. Parsed whole (``json.load``), it costs the ingest's driver about 1.5 kB
per note. Here the top-level object is read in chunks and parsed one
``"note_str": {...}`` pair at a time with :class:`json.JSONDecoder`, hashing the
bytes as they go by; the driver keeps per note only what planning needs (a
:class:`NoteIndex`: the note_str, its split, its instrument's code and where its
entry lies in the file), and the tasks that write a shard read their notes'
entries back by byte range (:meth:`ExamplesFile.read`).

The parse is JSON's own: the same decoder, the same messages, a duplicate key
keeps its last entry, and an error names its line and column in the file.
"""
from __future__ import annotations

import codecs
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from json.decoder import JSONDecodeError, scanstring
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import nsynth
from ..errors import UserError
from .notes import Note, check_metadata, place_note
from .storage import Location

log = logging.getLogger(__name__)

EXAMPLES = "examples.json"
READ_BYTES = 1 << 20    # bytes read at a time while streaming
INDEX_BATCH = 16384     # entries gathered in Python before they become Arrow columns
READ_BATCH = 4096       # entries read back per batch when a NoteIndex is iterated
MERGE_GAP = 64 << 10    # ranges closer than this are read back as one
# An error this close to the end of what has been read may be data cut short
# (a number, a literal or an escape split by the chunk boundary): read more first.
_TAIL = 32
_WS = " \t\n\r"
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}
_DECODER = json.JSONDecoder()


class _NotAnObject(Exception):
    """The top level does not start with ``{``: what it is, is told by parsing it whole."""


class _Incomplete(Exception):
    """The entry at the parse position needs more of the file."""


def _codec(head: bytes) -> tuple[str, int]:
    """The text's codec, without byte-order mark, and the mark's length, as ``json.loads`` detects them."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    name = json.detect_encoding(head)
    return ("utf-8" if name == "utf-8-sig" else name), 0


class ExamplesStream:
    """examples.json's top-level object, one pair at a time.

    Iterating yields ``(note_str, entry, offset, length)``: ``offset`` and ``length``
    are in bytes and span the pair's text from the key's opening quote to the
    entry's end. Once iterated to the end, :attr:`sha256` is the checksum of
    every byte of the file and :attr:`codec` its text's codec.

    Raises UserError for a file that is not UTF-8 (or UTF-16/32, as ``json.loads``
    accepts) text, not valid JSON, or whose top level is not an object; the
    message names the file and the byte, or line and column, where it fails.
    """

    def __init__(self, source: Location, relpath: str = EXAMPLES):
        self.source, self.relpath, self.where = source, relpath, source.display(relpath)
        self.sha256 = ""
        self.codec = "utf-8"

    def __iter__(self) -> Iterator[tuple[str, object, int, int]]:
        try:
            stream = self.source.fs.open_input_stream(self.source.join(self.relpath))
        except OSError as err:
            raise UserError(f"{self.where}: unreadable ({err})") from None
        with stream:
            parser = _Parser(stream, self.where)
            try:
                yield from parser.pairs()
            except _NotAnObject:
                self._whole()
            self.sha256, self.codec = parser.hash.hexdigest(), parser.codec

    def _whole(self) -> None:
        """Parse the whole file as ``json.loads`` does, to say what its top level is (always raises)."""
        try:
            value = json.loads(self.source.read_bytes(self.relpath))
        except OSError as err:
            raise UserError(f"{self.where}: unreadable ({err})") from None
        except UnicodeDecodeError as err:
            raise UserError(f"{self.where}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except JSONDecodeError as err:
            raise UserError(f"{self.where}: not valid JSON ({err.msg} at line {err.lineno}, "
                            f"column {err.colno})") from None
        kind = _JSON_TYPES.get(type(value), type(value).__name__)
        raise UserError(f"{self.where}: the top level is {kind}, expected an object keyed by note_str")


class _Parser:
    """The incremental reader behind :class:`ExamplesStream`.

    ``buf`` holds decoded text from file byte ``pos_byte`` - (bytes of buf[:pos])
    on; ``pos`` is the parse position. Consumed text is dropped before each read,
    so the buffer holds about one chunk (more only for an entry larger than a chunk).
    """

    def __init__(self, stream, where: str):
        self.stream, self.where = stream, where
        self.hash = hashlib.sha256()
        self.codec, self.decoder = "utf-8", None
        self.eof = False
        self.read_bytes = 0         # bytes read from the file
        self.buf, self.pos = "", 0
        self.pos_byte = 0           # file offset of buf[pos]
        self.ascii = True           # buf is ASCII and the codec UTF-8: a char is a byte
        self.lines_before = 0       # newlines before buf[0]
        self.col_before = 0         # characters between the last of them and buf[0]

    # -- reading ---------------------------------------------------------------------------
    def _read(self, size: int) -> bytes:
        try:
            data = self.stream.read(size)
        except OSError as err:
            raise UserError(f"{self.where}: unreadable ({err})") from None
        self.hash.update(data)
        self.read_bytes += len(data)
        if len(data) < size:
            self.eof = True
        return data

    def _fill(self, size: int = READ_BYTES) -> None:
        """Drop the consumed text and decode ``size`` more bytes onto the buffer."""
        if self.pos:
            dropped = self.buf[:self.pos]
            newline = dropped.rfind("\n")
            self.col_before = (len(dropped) - newline - 1) if newline >= 0 else self.col_before + len(dropped)
            self.lines_before += dropped.count("\n")
            self.buf, self.pos = self.buf[self.pos:], 0
        data = self._read(size)
        start = self.read_bytes - len(data)
        if self.decoder is None:
            while len(data) < 4 and not self.eof:
                data += self._read(4 - len(data))
            self.codec, skip = _codec(data[:4])
            self.decoder = codecs.getincrementaldecoder(self.codec)("surrogatepass")
            data, start, self.pos_byte = data[skip:], skip, skip
        pending = self.decoder.getstate()[0]
        try:
            text = self.decoder.decode(data, final=self.eof)
        except UnicodeDecodeError as err:
            raise UserError(f"{self.where}: not UTF-8 text ({err.reason} at byte "
                            f"{start - len(pending) + err.start})") from None
        self.buf += text
        self.ascii = self.codec == "utf-8" and self.buf.isascii()

    def _more(self) -> None:
        """Read more for an entry cut short: at least as much again as is buffered."""
        self._fill(max(READ_BYTES, 2 * (len(self.buf) - self.pos)))

    def _advance(self, to: int) -> None:
        """Move the parse position to ``to``, counting the bytes passed."""
        if self.ascii:
            self.pos_byte += to - self.pos
        else:
            self.pos_byte += len(self.buf[self.pos:to].encode(self.codec, "surrogatepass"))
        self.pos = to

    # -- errors ----------------------------------------------------------------------------
    def _located(self, msg: str, at: int) -> UserError:
        """The error for ``msg`` at buffer position ``at``, with its line and column in the file."""
        newline = self.buf.rfind("\n", 0, at)
        line = self.lines_before + self.buf.count("\n", 0, at) + 1
        column = at - newline if newline >= 0 else self.col_before + at + 1
        return UserError(f"{self.where}: not valid JSON ({msg} at line {line}, column {column})")

    def _error(self, msg: str, at: int) -> Exception:
        """``_Incomplete`` when more of the file may settle it, else the UserError to raise."""
        cut_short = at >= len(self.buf) - _TAIL or msg.startswith("Unterminated string")
        return _Incomplete() if cut_short and not self.eof else self._located(msg, at)

    def _skip(self, i: int) -> int:
        buf, n = self.buf, len(self.buf)
        while i < n and buf[i] in _WS:
            i += 1
        return i

    # -- the grammar of the top level ------------------------------------------------------
    def pairs(self) -> Iterator[tuple[str, object, int, int]]:
        self._fill()
        while True:
            i = self._skip(self.pos)
            if i < len(self.buf) or self.eof:
                break
            self._advance(i)
            self._fill()
        if i >= len(self.buf) or self.buf[i] != "{":
            raise _NotAnObject()
        self._advance(i + 1)
        first = True
        while True:
            try:
                pair = self._pair(first)
            except _Incomplete:
                self._more()
                continue
            if pair is None:
                break
            first = False
            key, value, start, end, after, closed = pair
            self._advance(start)
            offset = self.pos_byte
            self._advance(end)
            yield key, value, offset, self.pos_byte - offset
            self._advance(after)
            if closed:
                break
        self._end()

    def _pair(self, first: bool):
        """Parse ``"key": value`` and the delimiter after it, from ``pos``.

        Returns (key, value, key start, value end, position after the delimiter,
        whether it closed the object), or None for an empty object (then past its ``}``).
        """
        buf = self.buf
        i = self._skip(self.pos)
        char = buf[i:i + 1]
        if first and char == "}":
            self._advance(i + 1)
            return None
        if char != '"':
            raise self._error("Expecting property name enclosed in double quotes", i)
        try:
            key, j = scanstring(buf, i + 1, True)
        except JSONDecodeError as err:
            raise self._error(err.msg, err.pos) from None
        j = self._skip(j)
        if buf[j:j + 1] != ":":
            raise self._error("Expecting ':' delimiter", j)
        try:
            value, end = _DECODER.raw_decode(buf, self._skip(j + 1))
        except JSONDecodeError as err:
            raise self._error(err.msg, err.pos) from None
        k = self._skip(end)
        char = buf[k:k + 1]
        if char not in (",", "}"):
            raise self._error("Expecting ',' delimiter", k)
        return key, value, i, end, k + 1, char == "}"

    def _end(self) -> None:
        """After the closing ``}``: whitespace only, to the end of the file ("Extra data" otherwise)."""
        while True:
            i = self._skip(self.pos)
            if i < len(self.buf):
                raise self._located("Extra data", i)
            self._advance(i)
            if self.eof:
                return
            self._fill()


def _parse_pair(text: str) -> tuple[str, object]:
    """``"key": value`` (a pair's text as :class:`ExamplesStream` located it) -> (key, value)."""
    if not text.startswith('"'):
        raise ValueError("no key")
    key, j = scanstring(text, 1, True)
    while j < len(text) and text[j] in _WS:
        j += 1
    if text[j:j + 1] != ":":
        raise ValueError("no ':'")
    j += 1
    while j < len(text) and text[j] in _WS:
        j += 1
    value, end = _DECODER.raw_decode(text, j)
    if end != len(text):
        raise ValueError("text after the value")
    return key, value


@dataclass(frozen=True)
class ExamplesFile:
    """Where a listing's entries are read back from (picklable: it travels to Ray tasks).

    Attributes:
        source: the NSynth-layout folder.
        codec: the text's codec, as :class:`ExamplesStream` found it.
        relpath: the file, relative to ``source``.
    """

    source: Location
    codec: str = "utf-8"
    relpath: str = EXAMPLES

    def read(self, note_strs: Sequence[str], offsets: np.ndarray, lengths: np.ndarray) -> list:
        """The entries of some notes, read by byte range: ranges less than
        :data:`MERGE_GAP` apart are read as one (a sorted examples.json lists a
        shard's notes side by side), so an object store gets few requests.

        Args:
            note_strs: the notes, as keyed in the file.
            offsets, lengths: (N,) int64, where each pair lies (see :class:`ExamplesStream`).

        Returns:
            the N entries, in order. Raises UserError when a range no longer holds
            its note (the file changed after it was listed).
        """
        offsets, lengths = np.asarray(offsets, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        where = self.source.display(self.relpath)
        entries: list = [None] * len(note_strs)
        order = np.argsort(offsets, kind="stable")
        ends = offsets + lengths
        with self.source.fs.open_input_file(self.source.join(self.relpath)) as f:
            first = 0
            while first < len(order):
                last = first
                while last + 1 < len(order) and offsets[order[last + 1]] - ends[order[last]] <= MERGE_GAP:
                    last += 1
                span = int(offsets[order[first]])
                data = f.read_at(int(ends[order[last]]) - span, span)
                for i in order[first:last + 1]:
                    start = int(offsets[i]) - span
                    try:
                        key, value = _parse_pair(data[start:start + int(lengths[i])].decode(
                            self.codec, "surrogatepass"))
                    except ValueError:  # JSONDecodeError and UnicodeDecodeError too
                        key, value = None, None
                    if key != note_strs[i]:
                        raise UserError(f"{where}: bytes {offsets[i]}-{ends[i]} no longer hold the entry of "
                                        f"{note_strs[i]!r} (the file changed during the ingest; run it again)")
                    entries[i] = value
                first = last + 1
        return entries


_SPLIT_CODE = {split: code for code, split in enumerate(nsynth.SPLITS)}
INDEX_SCHEMA = pa.schema([
    ("note_str", pa.string()),
    ("split", pa.int8()),          # index in nsynth.SPLITS; -1 while listing: not placed
    ("instrument", pa.int32()),    # index in NoteIndex.instruments (its code, not its dense id)
    ("offset", pa.int64()),        # the pair's place in examples.json, in bytes
    ("length", pa.int64()),
])
# What a write task receives per shard (NoteIndex.encode): instrument is the dense id there.
SHARD_SCHEMA = pa.schema([f for f in INDEX_SCHEMA if f.name != "split"])


class NoteIndex(Sequence):
    """Listed notes placed in a split, grouped by split (in ``nsynth.SPLITS`` order), each
    split sorted by note_str: about 50 bytes a note, the metadata left in examples.json.

    A sequence of :class:`~sing_ray.data.notes.Note`: iterating it reads their entries
    back from examples.json, :data:`READ_BATCH` at a time; a slice is a NoteIndex too.

    Attributes:
        table: the notes, in :data:`INDEX_SCHEMA`.
        instruments: the names the ``instrument`` codes index.
        file: where the entries are read back from.
    """

    def __init__(self, table: pa.Table, instruments: Sequence[str], file: ExamplesFile):
        self.table, self.instruments, self.file = table, list(instruments), file

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, item):
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step != 1:
                raise ValueError("a NoteIndex slice takes consecutive notes")
            return NoteIndex(self.table.slice(start, max(0, stop - start)), self.instruments, self.file)
        i = range(len(self))[item]
        return next(iter(self[i:i + 1]))

    def __iter__(self) -> Iterator[Note]:
        for start in range(0, len(self), READ_BATCH):
            batch = self.table.slice(start, READ_BATCH)
            note_strs = batch.column("note_str").to_pylist()
            entries = self.file.read(note_strs, batch.column("offset").to_numpy(),
                                     batch.column("length").to_numpy())
            for note_str, entry, code in zip(note_strs, entries, batch.column("split").to_pylist()):
                yield Note(note_str, entry, nsynth.SPLITS[code])

    @property
    def note_strs(self) -> list[str]:
        return self.table.column("note_str").to_pylist()

    @property
    def nbytes(self) -> int:
        """Bytes the index's columns take (a slice counts its share)."""
        return self.table.nbytes

    def contains(self, note_strs: Sequence[str]) -> np.ndarray:
        """Which of ``note_strs`` are notes of this index: (N,) bool.

        By the strings' hashes, 16 bytes a note (a set of the note_strs would
        cost the driver about 100), each hit confirmed on the string itself.
        """
        if not hasattr(self, "_hashes"):
            hashes = np.empty(len(self), dtype=np.int64)
            column, start = self.table.column("note_str"), 0
            for chunk in column.chunks:
                for batch in range(0, len(chunk), READ_BATCH):
                    part = chunk.slice(batch, READ_BATCH).to_pylist()
                    hashes[start:start + len(part)] = [hash(s) for s in part]
                    start += len(part)
            self._rows = np.argsort(hashes, kind="stable")
            self._hashes = hashes[self._rows]
        wanted = np.fromiter((hash(s) for s in note_strs), dtype=np.int64, count=len(note_strs))
        first = np.searchsorted(self._hashes, wanted, "left")
        last = np.searchsorted(self._hashes, wanted, "right")
        found = np.zeros(len(note_strs), dtype=bool)
        column = self.table.column("note_str")
        one = np.flatnonzero(last - first == 1)
        if len(one):
            there = column.take(pa.array(self._rows[first[one]])).to_pylist()
            found[one] = [there[k] == note_strs[i] for k, i in enumerate(one)]
        for i in np.flatnonzero(last - first > 1):  # strings whose hashes collide: check each
            found[i] = note_strs[i] in column.take(pa.array(self._rows[first[i]:last[i]])).to_pylist()
        return found

    def split(self, split: str) -> "NoteIndex":
        """The notes of one split (consecutive rows, sorted by note_str)."""
        codes = self.table.column("split").to_numpy()
        code = _SPLIT_CODE[split]
        start, stop = np.searchsorted(codes, code, "left"), np.searchsorted(codes, code, "right")
        return self[int(start):int(stop)]

    def encode(self, vocabulary: Sequence[str]) -> bytes:
        """These notes as a write task receives them: note_str, byte range and dense instrument
        id (the index in ``vocabulary``), in :data:`SHARD_SCHEMA`, as Arrow IPC bytes."""
        index = {name: i for i, name in enumerate(vocabulary)}
        ids = pa.array([index.get(name, -1) for name in self.instruments], pa.int32())
        columns = {"note_str": self.table.column("note_str"), "offset": self.table.column("offset"),
                   "length": self.table.column("length"),
                   "instrument": ids.take(self.table.column("instrument"))}
        table = pa.table([columns[name] for name in SHARD_SCHEMA.names], schema=SHARD_SCHEMA)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, SHARD_SCHEMA) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()


def decode_shard(data: bytes) -> pa.Table:
    """Inverse of :meth:`NoteIndex.encode`: the shard's notes in :data:`SHARD_SCHEMA`."""
    return pa.ipc.open_stream(io.BytesIO(data)).read_all()


@dataclass(frozen=True)
class IndexedExamples:
    """examples.json, streamed once (:func:`index_examples`).

    Attributes:
        notes: the entries placed in a split, as a :class:`NoteIndex`.
        rejects: (note_str, reason) of the entries too broken to place, sorted by note_str.
        listed: the number of distinct keys.
        vocabulary: the sorted instrument names of the placed entries.
        sha256: checksum of the file's bytes.
    """

    notes: NoteIndex
    rejects: list[tuple[str, str]]
    listed: int
    vocabulary: list[str]
    sha256: str


def index_examples(source: Location, split_seed: int = nsynth.DEFAULT_SPLIT_SEED) -> IndexedExamples:
    """Stream examples.json once: place every entry in its split, keep a :class:`NoteIndex`.

    Each entry is placed (:func:`~sing_ray.data.notes.place_note`) as it is parsed
    and then dropped; an entry that cannot be placed gets its reason
    (:func:`~sing_ray.data.notes.check_metadata`). A key listed twice keeps its
    last entry, as ``json.load`` does (a warning says how many).

    Args:
        source: the NSynth-layout folder (its examples.json is known to be a file).
        split_seed: seed of the (instrument, pitch) hash that assigns splits.

    Returns:
        the :class:`IndexedExamples`. Raises UserError for a malformed file or one
        that lists no notes.
    """
    stream = ExamplesStream(source)
    codes: dict[str, int] = {}
    reasons: dict[str, str] = {}
    index = _GrowingIndex(stream.where)
    pending: tuple[list, ...] = ([], [], [], [], [])
    for key, entry, offset, length in stream:
        split = place_note(entry, split_seed)
        if split is None:
            reasons[key] = check_metadata(key, entry) or "examples.json: no instrument_str and pitch"
            code, instrument = -1, -1
        else:
            if reasons:
                reasons.pop(key, None)  # a later entry of the same key replaces it
            code, instrument = _SPLIT_CODE[split], codes.setdefault(entry["instrument_str"], len(codes))
        for column, value in zip(pending, (key, code, instrument, offset, length)):
            column.append(value)
        if len(pending[0]) == INDEX_BATCH:
            index.extend(*pending)
    index.extend(*pending)
    table = index.table()
    del index
    if not table.num_rows:
        raise UserError(f"{stream.where}: lists no notes (the top-level object is empty)")
    # Work on row numbers, and copy the table once at the end: each copy of it
    # would cost the driver its size again. The sort is stable: a key listed
    # twice has its rows in file order, and the last one stays.
    order = pc.sort_indices(table.column("note_str"))
    keys = table.column("note_str").take(order)
    later = pc.equal(keys.slice(0, len(keys) - 1), keys.slice(1))
    later = later.combine_chunks() if isinstance(later, pa.ChunkedArray) else later
    num_replaced = pc.sum(later).as_py() or 0
    if num_replaced:
        first = int(np.flatnonzero(later.to_numpy(zero_copy_only=False))[0])
        log.warning("%s: %d key(s) listed more than once, e.g. %s; each keeps its last entry, as a "
                    "JSON reader does", stream.where, num_replaced, keys[first].as_py())
        order = order.filter(pa.concat_arrays([pc.invert(later), pa.array([True])]))
    del keys, later
    listed = len(order)
    splits = table.column("split").take(order)
    placed = pc.greater_equal(splits, 0)
    order, splits = order.filter(placed).to_numpy(), splits.filter(placed).to_numpy()
    rows = order[np.argsort(splits, kind="stable")]   # by split, each by note_str
    del order, splits, placed
    notes_table = table.take(pa.array(rows)).combine_chunks()
    del table, rows
    names = list(codes)
    vocabulary = nsynth.build_vocabulary(
        names[c] for c in pc.unique(notes_table.column("instrument")).to_pylist())
    notes = NoteIndex(notes_table, names, ExamplesFile(source, stream.codec))
    return IndexedExamples(notes, sorted(reasons.items()), listed, vocabulary, stream.sha256)


class _GrowingIndex:
    """:data:`INDEX_SCHEMA`'s columns, grown in place a batch at a time.

    A few buffers that double when full rather than an Arrow array per batch:
    on the driver, thousands of mid-sized buffers among the parser's freed
    chunks left the heap fragmented (about 200 bytes of RSS a note for 50 of data).
    """

    def __init__(self, where: str):
        self.where, self.size = where, 0
        self.text = bytearray()
        self.columns = {f.name: np.empty(1024, dtype=f.type.to_pandas_dtype())
                        for f in INDEX_SCHEMA if f.name != "note_str"}
        self.columns["ends"] = np.empty(1024, dtype=np.int64)

    def extend(self, keys: list, *values: list) -> None:
        """Append a batch (the lists are emptied)."""
        n = len(keys)
        if not n:
            return
        if self.size + n > len(self.columns["ends"]):
            capacity = max(2 * len(self.columns["ends"]), self.size + n)
            for name, column in self.columns.items():
                grown = np.empty(capacity, dtype=column.dtype)
                grown[:self.size] = column[:self.size]
                self.columns[name] = grown
        start = len(self.text)
        try:
            self.text += "".join(keys).encode("utf-8")
        except UnicodeEncodeError:
            bad = next(k for k in keys if not k.isascii() and not _is_unicode(k))
            raise UserError(f"{self.where}: key {bad!r} is not valid Unicode (a lone surrogate "
                            "escape); it cannot name a note") from None
        sizes = [len(k) for k in keys] if len(self.text) - start == sum(map(len, keys)) else \
            [len(k.encode("utf-8")) for k in keys]
        ends = self.columns["ends"]
        ends[self.size:self.size + n] = np.cumsum(sizes) + start
        for name, column in zip(("split", "instrument", "offset", "length"), values):
            self.columns[name][self.size:self.size + n] = column
        self.size += n
        for column in (keys, *values):
            column.clear()

    def table(self) -> pa.Table:
        if len(self.text) >= 2**31:
            raise UserError(f"{self.where}: its keys take {len(self.text)} bytes, more than 2 GiB")
        offsets = np.zeros(self.size + 1, dtype=np.int32)
        offsets[1:] = self.columns["ends"][:self.size]
        keys = pa.StringArray.from_buffers(self.size, pa.py_buffer(offsets), pa.py_buffer(self.text))
        arrays = [keys] + [pa.array(self.columns[f.name][:self.size], type=f.type) for f in list(INDEX_SCHEMA)[1:]]
        return pa.Table.from_arrays(arrays, schema=INDEX_SCHEMA)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
