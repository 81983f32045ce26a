"""Export a trained PixelCNN to SavedModel, TFLite and ONNX with metadata and a parity report: `python -m export`."""
