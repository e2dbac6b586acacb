"""SING's models: convolutional autoencoder, LSTM sequence generator, and SING itself.

Pure torch. Constructors take plain keyword arguments (the config's field
names) and remember them in ``self.kwargs`` so checkpoints can rebuild them.
"""
from .autoencoder import Autoencoder, ConvolutionalDecoder, ConvolutionalEncoder, DecoderGemmWeights
from .sequence import SequenceGenerator
from .sing import SING, MODEL_CLASSES, build_autoencoder, build_sequence_generator, build_sing, num_parameters

__all__ = [
    "Autoencoder", "ConvolutionalDecoder", "ConvolutionalEncoder", "DecoderGemmWeights", "SequenceGenerator",
    "SING", "MODEL_CLASSES", "build_autoencoder", "build_sequence_generator", "build_sing", "num_parameters",
]
