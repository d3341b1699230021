"""Model repos with git-like branches: content-addressed chunks, trees, commits, refs,
tensor-level diff and merge, garbage collection.

Chunking and safetensors parsing, which the SDK runs client-side too, live in
:mod:`hub.shared`."""
