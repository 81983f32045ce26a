"""Image datasets: the catalog (no TensorFlow), image folders, the CIFAR-10 JPEG copy, and the tf.data pipelines."""
