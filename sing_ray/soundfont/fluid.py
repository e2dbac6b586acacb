"""FluidSynth, bound through pyfluidsynth and ctypes: a SoundFont loaded, single NSynth notes rendered.

FluidSynth is loaded when a :class:`NoteRenderer` is built, so that the package
imports without it; :func:`resolve_sf2` checks a file without it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import struct
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import nsynth
from ..errors import UserError
from .gm import gm_program

log = logging.getLogger(__name__)

SAMPLE_RATE = nsynth.SAMPLE_RATE
NUM_FRAMES = nsynth.NUM_FRAMES
HELD_FRAMES = 3 * SAMPLE_RATE                 # note-on for 3 s, as NSynth
RELEASE_FRAMES = NUM_FRAMES - HELD_FRAMES     # then note-off and 1 s of release

DEFAULT_SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SF2_PACKAGE = "fluid-soundfont-gm"

# FluidSynth's output is float; its synth.gain scales every voice. With one
# voice at a time, gain 1.0 put the loudest FluidR3_GM note (Overdriven Guitar,
# velocity 127, every second pitch of all 128 programs measured) at 0.975 of full
# scale; 0.9 leaves about 1 dB of headroom. One gain for every note keeps the
# loudness differences between velocities, which the model has to learn.
DEFAULT_GAIN = 0.9

# FluidSynth renders in blocks of 64 frames; a note-on takes effect at the next one.
_BLOCK = 64
# A freed voice keeps the pan gain it last had, and FluidSynth ramps a reused
# voice from that value over its first block (a click guard added in 2.2). So
# without care the first 4 ms of a note depend on which note used that voice
# before. Playing the same note for this many frames and killing it first leaves
# every voice the note will reuse in the same state, whatever ran before; 64
# frames was not enough for drawbar organs, 256 gave bit-identical notes over
# 800 random orders of all 128 programs (tests/test_soundfont.py checks a few).
_PRIME_FRAMES = 4 * _BLOCK


def resolve_sf2(path: str | os.PathLike | None = None) -> Path:
    """The SoundFont to render: ``path``, or FluidR3_GM from Debian when None.

    Checks what can be checked without FluidSynth: the file exists and its
    RIFF header says ``sfbk`` with the size the file has (a truncated download
    fails here with a clear message rather than deep inside FluidSynth).

    Raises:
        UserError: missing, not a file, not a SoundFont, or truncated.
    """
    if path is None:
        if not DEFAULT_SF2.is_file():
            raise UserError(f"the default SoundFont {DEFAULT_SF2} is missing: install it with "
                            f"`sudo apt-get install {SF2_PACKAGE}` (scripts/setup.sh does), "
                            f"or pass --sf2 PATH")
        sf2 = DEFAULT_SF2
    else:
        sf2 = Path(path).expanduser()
        if not sf2.exists():
            raise UserError(f"SoundFont {sf2} does not exist")
        if not sf2.is_file():
            raise UserError(f"SoundFont {sf2} is not a file")
    size = sf2.stat().st_size
    with open(sf2, "rb") as fh:
        header = fh.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise UserError(f"SoundFont {sf2} is not a SoundFont 2 file (no RIFF 'sfbk' header)")
    declared = struct.unpack("<I", header[4:8])[0] + 8
    if declared != size:
        raise UserError(f"SoundFont {sf2} is corrupt: its header declares {declared} bytes "
                        f"but the file has {size} (truncated or damaged)")
    return sf2.resolve()


_FLUID_LOG_LEVELS = range(5)       # FLUID_PANIC, FLUID_ERR, FLUID_WARN, FLUID_INFO, FLUID_DBG
_fluid_messages: list[str] = []
_fluid_log_callback = None


def _route_fluidsynth_log(lib) -> None:
    """Send FluidSynth's messages to logging (debug level) and keep the last few.

    FluidSynth writes its errors to stderr; a failed load is reported to the
    user as one UserError that quotes them instead.
    """
    global _fluid_log_callback
    if _fluid_log_callback is not None:
        return
    proto = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

    def handle(level, message, _data):
        text = message.decode("utf-8", "replace") if message else ""
        _fluid_messages.append(text)
        del _fluid_messages[:-8]
        log.debug("fluidsynth(%s): %s", level, text)

    _fluid_log_callback = proto(handle)          # kept alive: FluidSynth holds the pointer
    lib.fluid_set_log_function.argtypes = [ctypes.c_int, proto, ctypes.c_void_p]
    for level in _FLUID_LOG_LEVELS:
        lib.fluid_set_log_function(level, _fluid_log_callback, None)


def _load_fluidsynth():
    """pyfluidsynth and the libfluidsynth handle, or a UserError naming the fix."""
    try:
        import fluidsynth
    except ImportError as err:
        raise UserError(f"FluidSynth is not usable ({err}): install the Debian packages "
                        "fluidsynth and libfluidsynth3 and the Python package pyfluidsynth "
                        "(scripts/setup.sh does both)") from None
    lib = getattr(fluidsynth, "_fl", None)
    if lib is None:
        lib = ctypes.CDLL(getattr(fluidsynth, "lib", None) or ctypes.util.find_library("fluidsynth"))
    lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                            ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.fluid_synth_write_float.restype = ctypes.c_int
    _route_fluidsynth_log(lib)
    return fluidsynth, lib


class NoteRenderer:
    """One FluidSynth synthesizer with one SoundFont loaded, rendering single notes.

    No audio driver: samples are pulled with ``fluid_synth_write_float`` (the
    float path, so no dither noise and the peak can be measured before
    quantizing). Reverb and chorus are off: notes stay dry and a note renders
    bit-identically whatever was rendered before it.

    Args:
        sf2: path of the SoundFont (checked with :func:`resolve_sf2` first).
        gain: FluidSynth's master gain.
    Raises:
        UserError: FluidSynth is missing, or cannot load the file.
    """

    def __init__(self, sf2: str | os.PathLike, gain: float = DEFAULT_GAIN):
        fluidsynth, self._lib = _load_fluidsynth()
        self.sf2 = Path(sf2)
        self.gain = float(gain)
        self._synth = fluidsynth.Synth(gain=self.gain, samplerate=SAMPLE_RATE, channels=16,
                                       **{"synth.reverb.active": 0, "synth.chorus.active": 0})
        del _fluid_messages[:]
        self._sfid = self._synth.sfload(str(self.sf2))
        if self._sfid < 0:
            said = "; ".join(m for m in _fluid_messages if m) or "no reason given"
            self.close()
            raise UserError(f"SoundFont {self.sf2} could not be loaded (corrupt or not a "
                            f"SoundFont 2 file): FluidSynth says: {said}")
        self._buffer = np.zeros(2 * NUM_FRAMES, dtype=np.float32)

    def preset_name(self, program: int, bank: int = 0) -> str | None:
        """The SoundFont's preset name at (bank, program), or None if it has none."""
        return self._synth.sfpreset_name(self._sfid, bank, int(program))

    def _render(self, num_frames: int, offset: int = 0) -> None:
        # Interleaved stereo into self._buffer from frame `offset` on.
        ptr = self._buffer.ctypes.data + 8 * offset
        status = self._lib.fluid_synth_write_float(self._synth.synth, num_frames,
                                                   ptr, 0, 2, ptr, 1, 2)
        if status != 0:
            raise RuntimeError(f"FluidSynth failed to render {num_frames} frames")

    def render(self, program: int, pitch: int, velocity: int, bank: int = 0) -> np.ndarray:
        """One NSynth note: note-on held 3 s, note-off, 1 s of release.

        Args:
            program: GM program.
            pitch: MIDI key.
            velocity: MIDI velocity.
            bank: the SoundFont bank (0 for GM's; GS variation banks 1-127).
        Returns:
            (64000,) float32, mono (mean of FluidSynth's left and right).
        """
        synth = self._synth
        # Silence whatever still sounds and let the mixer hand its voices back
        # (a killed voice is freed during the next blocks, not at once), so the
        # priming below and the note find the same free voices.
        synth.all_sounds_off(0)
        self._render(_PRIME_FRAMES)
        synth.system_reset()            # controllers, pitch bend, programs back to default
        if synth.program_select(0, self._sfid, int(bank), int(program)) != 0:
            raise UserError(f"SoundFont {self.sf2} has no preset at bank {bank}, program {program}")
        # Priming: see _PRIME_FRAMES.
        synth.noteon(0, int(pitch), int(velocity))
        self._render(_PRIME_FRAMES)
        synth.all_sounds_off(0)
        self._render(_PRIME_FRAMES)
        synth.noteon(0, int(pitch), int(velocity))
        self._render(HELD_FRAMES)
        synth.noteoff(0, int(pitch))
        # The release tail beyond 4 s is cut, as in NSynth.
        self._render(RELEASE_FRAMES, offset=HELD_FRAMES)
        stereo = self._buffer.reshape(NUM_FRAMES, 2)
        return stereo.mean(axis=1, dtype=np.float32)

    def close(self) -> None:
        """Free the synthesizer and its SoundFont."""
        if getattr(self, "_synth", None) is not None:
            self._synth.delete()
            self._synth = None

    def __enter__(self) -> "NoteRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_soundfont(sf2: str | os.PathLike, programs: Iterable[int]) -> dict[int, str]:
    """Load the SoundFont and check that it has a bank-0 preset for every program.

    Args:
        sf2: a path already checked by :func:`resolve_sf2`.
        programs: GM program numbers.
    Returns:
        program -> the SoundFont's preset name.
    Raises:
        UserError: the file does not load, or some programs have no preset.
    """
    with NoteRenderer(sf2) as renderer:
        names = {p: renderer.preset_name(p) for p in programs}
    missing = [p for p, name in names.items() if name is None]
    if missing:
        listed = ", ".join(f"{p} ({gm_program(p).name})" for p in missing)
        raise UserError(f"SoundFont {sf2} has no bank-0 preset for program(s) {listed}: "
                        f"choose others with --programs")
    return names
