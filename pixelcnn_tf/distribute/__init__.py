"""tf.distribute: the strategy, the cluster read from TF_CONFIG, the local launcher, the watchdog, multi-worker patches."""
