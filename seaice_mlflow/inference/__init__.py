"""Full-scene inference: tiled, blended, memory-bounded, on CPU or GPU."""
