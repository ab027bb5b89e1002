"""penguin-serve: the shared contract between training and serving (schema, encoding, model files)."""
