"""A training run: model.fit with per-epoch commits, its run folder, loss tables, averaging, TensorBoard, checkpoints."""
