"""Self-supervised pretraining objectives (one file each) on the shared backbone and loop."""
