"""The MLflow steps of the optical commands."""
