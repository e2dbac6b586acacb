"""SING's models, built of parts: encoders, the decoder's trunk and heads, the LSTM, SING itself.

- :mod:`.encoders`: waveform to frames, ``learnt`` (the paper's) or ``harmonic`` (measured partials);
- :mod:`.decoder`: frames to waveform, a trunk of convs and the heads of :mod:`.heads`
  (``transposed_conv``, the paper's; ``partials``; ``noise``), one path in training and rendering;
- :mod:`.partials` and :mod:`.noise`: the partials' and the noise's signal processing;
- :mod:`.autoencoder` (phase 1), :mod:`.sequence` (phase 2's LSTM), :mod:`.sing` (phase 3, and the
  builders from config); :mod:`.legacy` reads checkpoints from before the parts had names.

Pure torch. Constructors take plain keyword arguments (the config's field names) and remember
them in ``self.kwargs`` so checkpoints can rebuild them; :func:`~sing_ray.config.check_parts`
holds the rules between the parts.
"""
from .autoencoder import Autoencoder
from .decoder import Decoder, DecoderGemmWeights
from .encoders import ENCODERS, HarmonicEncoder, LearntEncoder
from .heads import Head, NoiseHead, PartialsHead, TransposedConvHead
from .legacy import upgrade_checkpoint
from .sequence import SequenceGenerator
from .sing import (SING, MODEL_CLASSES, build_autoencoder, build_sequence_generator, build_sing, num_parameters,
                   sing_kwargs_from_phases)

__all__ = [
    "Autoencoder", "Decoder", "DecoderGemmWeights", "ENCODERS", "HarmonicEncoder", "LearntEncoder", "Head",
    "NoiseHead", "PartialsHead", "TransposedConvHead", "SequenceGenerator", "SING", "MODEL_CLASSES",
    "build_autoencoder", "build_sequence_generator", "build_sing", "num_parameters", "sing_kwargs_from_phases",
    "upgrade_checkpoint",
]
