"""TensorFlow-free sampling and scoring of exported PixelCNNs (numpy + onnxruntime or LiteRT)."""
from serve.metadata import ModelSpec, ServeError

__all__ = ["ModelSpec", "Sampler", "SamplingError", "ServeError"]


def __getattr__(name: str):
    # Sampler and SamplingError load numpy: imported on first use, so `import serve.names` (train.py's flag check,
    # the page server) stays light.
    if name == "Sampler":
        from serve.sampler import Sampler

        return Sampler
    if name == "SamplingError":
        from serve.sampling import SamplingError

        return SamplingError
    raise AttributeError(f"module 'serve' has no attribute {name!r}")
