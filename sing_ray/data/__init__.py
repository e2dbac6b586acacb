"""Ray Data at the edge of sing-ray: NSynth ingest into Parquet, and datasets read back.

``sing_ray.data.ingest.ingest`` writes the dataset layout of
docs/architecture.md#data-contracts; ``make_note_dataset`` opens one split of it
as a Ray Dataset of float32 waveforms. Ray itself is imported only when one of
them runs. (The function ``ingest`` is not re-exported here: it would shadow its
module's name.)
"""
from .dataset import (WAV_COLUMN, load_cardinalities, load_manifest, load_vocabulary,
                      make_note_dataset)
from .schema import NOTE_SCHEMA, REJECT_SCHEMA, SCHEMA_VERSION

__all__ = [
    "NOTE_SCHEMA", "REJECT_SCHEMA", "SCHEMA_VERSION", "WAV_COLUMN", "load_cardinalities",
    "load_manifest", "load_vocabulary", "make_note_dataset",
]
