"""pixelcnn-tf: a Keras PixelCNN that trains with model.fit and exports for TensorFlow-free sampling."""
import os

# TensorFlow turns its oneDNN kernels on by default only on x86 CPUs with AVX-512 VNNI/BF16 or AMX. On an AVX2-only
# CPU they train the seed model ~1.6x and the gated one ~1.3x faster (docs/benchmarks.md, "Training speed"), so
# every CPU takes the same path. The user's own setting wins; it only acts if TensorFlow is not imported yet.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
