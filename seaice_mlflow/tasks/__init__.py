"""Task families: each folder is one task built on :mod:`seaice_mlflow.core` (its TaskSpec, file
formats, options, steps and commands)."""
