"""`memory-ext bench`: the fused ops beside the eager reference and torch.compile, one run."""
