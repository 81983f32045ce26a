"""The contract both sides import: tensor, architecture and output names, one spelling each (no numpy)."""
from __future__ import annotations

# Architecture names, importable without numpy (train.py's flag check); serve/architectures/'s table must name the same.
ARCHITECTURE_NAMES = ("pixelcnn", "gated")
# Output distribution names, importable without numpy; serve/distributions/'s table must name the same.
OUTPUT_NAMES = ("softmax", "logistic_mixture")
IMAGE = "image"  # full model input: float32 (B, H, W, C) level indices
LABEL = "label"  # int32 (B,) class id, class-conditional models only
LOGITS = "logits"  # the output distribution's head: full model (B, H, W, *head_shape); step models (B, *head_shape)
# Step-model tensors carry a layer index: window_0, features_3, ... (see serve/architectures/seed.py, serve/architectures/gated.py).
WINDOW, FEATURES, ABOVE, BAND, VERTICAL = "window", "features", "above", "band", "vertical"


def indexed(prefix: str, layer: int) -> str:
    return f"{prefix}_{layer}"


def indexed_names(prefix: str, count: int) -> list[str]:
    return [indexed(prefix, n) for n in range(count)]
# The sampler graph (pixelcnn_tf/sampler_graph.py, serve/graph.py): one call from uniforms to images.
UNIFORMS, TEMPERATURE, PREFIX, START, IMAGES = "uniforms", "temperature", "prefix", "start", "images"
GRAPH_INPUTS = (UNIFORMS, TEMPERATURE, PREFIX, START)  # then LABEL, class-conditional models only
SAMPLE_SIGNATURE = "sample"  # its SavedModel signature and TFLite signature name
