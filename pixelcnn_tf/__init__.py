"""pixelcnn-tf: a Keras PixelCNN that trains with model.fit and exports for TensorFlow-free sampling."""

__version__ = "0.1.0"
