"""TensorFlow-free sampling and scoring of exported PixelCNNs (numpy + onnxruntime or LiteRT)."""
from serve.metadata import ModelSpec, ServeError
from serve.sampler import Sampler
from serve.sampling import SamplingError

__all__ = ["ModelSpec", "Sampler", "SamplingError", "ServeError"]
