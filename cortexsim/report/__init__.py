"""Reports read back from study folders: the summary and its figures, the
generative section, trained models rebuilt from their checkpoints."""
