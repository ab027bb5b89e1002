"""Developer tools: required tools, generated references, the GCS emulator, processes, mutation report."""
