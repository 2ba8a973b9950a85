"""A training run: the script a child process runs, its callbacks, checkpoints and kernels."""
