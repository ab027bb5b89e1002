"""The image: the container engine, the debootstrapped base, building, measuring and pushing the image."""
