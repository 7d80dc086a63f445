"""The AI4Arctic file formats: names, variables, egg codes, ready-to-train, test and raw files."""
