"""Model repos with git-like branches: content-addressed chunks, trees, commits, refs,
tensor-level diff and merge, garbage collection.

``chunking`` and ``tensors`` are pure Python (no Django): the SDK uses them client-side."""
