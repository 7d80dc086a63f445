"""Synthetic AI4Arctic scenes in the exact real file layouts."""

from seaice_mlflow.tasks.autoice.synthetic.generate import FORMATS, SPLITS, SyntheticScene, synthesize

__all__ = ["FORMATS", "SPLITS", "SyntheticScene", "synthesize"]
