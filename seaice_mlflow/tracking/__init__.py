"""MLflow tracking and Model Registry: runs, logged models, promotion."""
