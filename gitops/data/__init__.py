"""Data sets: the verbs (create_dataset, ingest, show_dataset) above their domain (rows, keys,
batches)."""
