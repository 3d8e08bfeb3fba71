"""Transfer: fine-tuning modes, the supervised/from-scratch runner, weak supervision."""
