"""TensorFlow-free sampling and scoring of exported PixelCNNs (numpy + onnxruntime or LiteRT)."""
