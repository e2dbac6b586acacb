"""Writing a sample library: loops and releases found on each note, then one file per sampler format.

:mod:`sing_ray.render` renders the notes (a Ray batch job); this package turns them
into something a musician plays:

- :mod:`.notes`: per note, whether it sustains, its sustain loop (crossfade baked
  into the sample, stored in the WAV's ``smpl`` chunk) and its release time.
- :mod:`.mapping`: which keys and velocities each sample covers (every format writes
  the same zones).
- one module per sampler format, each with the same three names::

      NAME: str                                  # what --formats calls it
      PER_INSTRUMENT: bool                       # a file per instrument, or one for the library
      def files(maps) -> {relative path: [InstrumentMap, ...]}
      def build(maps, read_pcm) -> bytes         # read_pcm(path) -> int16 samples

  and optionally ``check_size(notes, frames)``: given the largest instrument's notes, raises
  UserError before rendering when one file cannot hold them.
  A new format is one new module added to :data:`FORMAT_MODULES`.
- :mod:`.page`: ``index.html``, an audition page for libraries of any size: search and
  filters over the instruments, a spectrogram per note, audio fetched when a note is played.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Sequence

from ..errors import UserError

# --formats name -> module (imported on first use).
FORMAT_MODULES = {"sfz": "sfz", "dspreset": "dspreset", "sf2": "sf2"}
DEFAULT_FORMATS = tuple(FORMAT_MODULES)


def format_module(name: str) -> ModuleType:
    """The module that writes format ``name`` (see the package docstring)."""
    return importlib.import_module(f"{__name__}.{FORMAT_MODULES[name]}")


def parse_formats(text: str | Sequence[str] | None) -> list[str]:
    """``--formats``: comma-separated names, ``all``, or None for all of them.

    Raises:
        UserError naming the unknown format and the known ones.
    """
    if text is None:
        return list(DEFAULT_FORMATS)
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [i.strip().lower() for i in items if i.strip()]
    if names == ["all"]:
        return list(DEFAULT_FORMATS)
    if not names:
        raise UserError(f"--formats {text!r}: name at least one of {', '.join(DEFAULT_FORMATS)}")
    for name in names:
        if name not in FORMAT_MODULES:
            raise UserError(f"--formats: unknown format {name!r}; known: {', '.join(DEFAULT_FORMATS)}")
    return list(dict.fromkeys(names))
