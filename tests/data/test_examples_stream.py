"""examples.json streamed one entry at a time: the same entries, errors and checksum as json.loads."""
from __future__ import annotations

import hashlib
import json
import logging
import tracemalloc

import pytest

import sing_ray.data.examples as examples_mod
from sing_ray import nsynth
from sing_ray.data.examples import ExamplesStream, index_examples
from sing_ray.data.ingest import list_source, plan_shards
from sing_ray.data.storage import resolve
from sing_ray.errors import UserError

DOC = {"a-1": {"x": 1.5e3, "y": [1, 2, {"z": "é€🎵"}], "t": True}, "bé": 12345, "c": None,
       "d\n": "q\"\\", "e": -7e-2, "f": [], "g": {}}
TEXTS = [json.dumps(DOC), json.dumps(DOC, indent=1), json.dumps(DOC, indent=2, ensure_ascii=False),
         '  {"a" : 1 ,"b":2, "a": 3}  \n']


def _old(raw: bytes):
    """What the ingest said before it streamed: json.loads' value or its error, as the message puts it."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError as err:
        return f"not UTF-8 text ({err.reason} at byte {err.start})"
    except json.JSONDecodeError as err:
        return f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
    return value if isinstance(value, dict) else "not an object"


def _streamed(folder, raw: bytes):
    (folder / "examples.json").write_bytes(raw)
    stream = ExamplesStream(resolve(str(folder)))
    try:
        pairs = list(stream)
    except UserError as err:
        message = str(err).split(": ", 1)[1]
        return "not an object" if "the top level is" in message else message, None
    for key, value, offset, length in pairs:  # each range holds exactly its pair
        text = raw[offset:offset + length].decode(stream.codec, "surrogatepass")
        assert json.loads("{" + text + "}") == {key: value}
    assert stream.sha256 == hashlib.sha256(raw).hexdigest()
    return dict((k, v) for k, v, _, _ in pairs), stream


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_every_cut_and_corruption_reads_as_json_loads_says(tmp_path, monkeypatch, chunk):
    # Chunks of 1 to 7 bytes split every token, escape and multi-byte character somewhere.
    monkeypatch.setattr(examples_mod, "READ_BYTES", chunk)
    for text in TEXTS:
        for codec in ("utf-8", "utf-16", "utf-32-be"):
            raw = text.encode(codec)
            variants = [raw[:cut] for cut in range(len(raw) + 1)]
            variants += [raw[:i] + c + raw[i + 1:] for i in range(0, len(raw), 5) for c in (b"x", b"}", b'"')]
            for variant in variants:
                assert _streamed(tmp_path, variant)[0] == _old(variant), variant


def test_a_utf8_error_names_its_byte_in_the_file(tmp_path):
    # json.loads counted from after the byte-order mark; the stream counts from the file's start.
    raw = b"\xef\xbb\xbf" + b'{"a": "\xc3"}'
    assert _streamed(tmp_path, raw)[0] == "not UTF-8 text (invalid continuation byte at byte 10)"
    assert raw[10:11] == b"\xc3"


def test_entries_are_read_back_by_range(tmp_path):
    folder = tmp_path / "src"
    (folder / "audio").mkdir(parents=True)
    entries = {}
    for i, pitch in enumerate(range(40, 70)):
        meta = nsynth.example_metadata("keyboard_acoustic_004", pitch, 100, note=i, instrument=0)
        entries[meta["note_str"]] = meta
    # Unsorted, with non-ASCII text between entries' fields: offsets are bytes, not characters.
    keys = list(entries)[::-1]
    text = "{" + ",\n".join(f'{json.dumps(k)}: {json.dumps(dict(entries[k], comment="é€"), ensure_ascii=False)}'
                            for k in keys) + "}"
    (folder / "examples.json").write_text(text, encoding="utf-8")
    listing = list_source(resolve(str(folder)))
    assert listing.listed == len(entries) and not listing.rejects
    notes = list(listing.notes)
    assert [n.note_str for n in notes] == sorted(entries, key=lambda s: (
        nsynth.SPLITS.index(nsynth.split_of("keyboard_acoustic_004", int(s.split("-")[1]))), s))
    for note in notes:
        assert note.meta == dict(entries[note.note_str], comment="é€")
        assert note.split == nsynth.split_of(note.meta["instrument_str"], note.meta["pitch"])
    shards = plan_shards(listing.notes, 4)
    assert sum(len(s) for *_, s in shards) == len(entries)
    assert [n.note_str for n in shards[0][2]] == [n.note_str for n in notes[:len(shards[0][2])]]

    # A file changed after it was listed is a clear error, not wrong metadata.
    (folder / "examples.json").write_text(" " + text, encoding="utf-8")
    with pytest.raises(UserError, match="no longer hold the entry of .* changed during the ingest"):
        list(listing.notes)


def test_duplicate_keys_keep_the_last_entry_and_rejects_keep_reasons(tmp_path, caplog):
    folder = tmp_path / "src"
    (folder / "audio").mkdir(parents=True)
    good = nsynth.example_metadata("bass_synthetic_009", 60, 25, note=0, instrument=0)
    name = good["note_str"]
    # The first entry of `name` cannot be placed, its second can; `other` the other way round.
    other = nsynth.example_metadata("bass_synthetic_009", 61, 25, note=1, instrument=0)
    text = (f'{{"{name}": "broken", "{other["note_str"]}": {json.dumps(other)}, "{name}": {json.dumps(good)},'
            f' "{other["note_str"]}": [1], "bad": {{"pitch": 60}}}}')
    (folder / "examples.json").write_text(text)
    (folder / "audio" / "stray.wav").write_bytes(b"")
    (folder / "audio" / f"{name}.wav").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="sing_ray.data.examples"):
        listing = list_source(resolve(str(folder)))
    assert "2 key(s) listed more than once" in caplog.text
    assert listing.listed == 3 == len(json.loads(text))
    assert [n.note_str for n in listing.notes] == [name] and list(listing.notes)[0].meta == good
    assert [s for s, _ in listing.rejects] == ["bad", other["note_str"]]
    assert listing.rejects[1][1] == "examples.json: metadata is a list, expected an object"
    assert listing.unlisted == ["stray.wav"] and listing.instruments == ["bass_synthetic_009"]


def test_a_lone_surrogate_key_is_a_clear_error(tmp_path):
    (tmp_path / "examples.json").write_text('{"\\ud800": {}}')
    with pytest.raises(UserError, match="is not valid Unicode"):
        index_examples(resolve(str(tmp_path)))


def test_the_listing_holds_tens_of_bytes_a_note(tmp_path):
    """The driver keeps no entry: its Python heap stays small while 20,000 entries go by."""
    folder = tmp_path / "src"
    (folder / "audio").mkdir(parents=True)
    entries = {}
    for i in range(20000):
        inst = f"guitar_acoustic_{i // 440:03d}"
        meta = nsynth.example_metadata(inst, 21 + (i // 5) % 88, nsynth.VELOCITIES[i % 5], note=i,
                                       instrument=i // 440)
        entries[meta["note_str"]] = meta
    (folder / "examples.json").write_text(json.dumps(entries, indent=1))
    del entries
    tracemalloc.start()
    try:
        listing = list_source(resolve(str(folder)))
        shards = plan_shards(listing.notes, 512)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert listing.listed == 20000 and sum(len(s) for *_, s in shards) == 20000
    # json.load kept 20,000 dicts, about 30 MB; the stream keeps one batch of keys at a time.
    assert peak < 12 * 2**20, peak
    assert listing.notes.nbytes / len(listing.notes) < 64
