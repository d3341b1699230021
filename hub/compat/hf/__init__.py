"""The Hugging Face Hub download and upload API, so the unmodified ``huggingface_hub`` client
works with ``HF_ENDPOINT=<hub>`` and a hub token (README: "Hugging Face clients")."""
