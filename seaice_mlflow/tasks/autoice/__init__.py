"""AutoICE / AI4Arctic Sentinel-1 scenes -> SIC, SOD and FLOE charts: the package's first task.

The only place that names the three charts (:mod:`~seaice_mlflow.tasks.autoice.charts`). ``files/``
reads the real netCDF layouts, ``synthetic/`` writes them, ``steps/`` holds one MLflow step per
command (preprocess, train, evaluate, predict, main).
"""
