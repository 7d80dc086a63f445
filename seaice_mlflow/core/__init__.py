"""The task-agnostic core: the task contract, tiled inference, metrics, losses and the training loop.

Nothing here names a task's heads: every module takes a :class:`~seaice_mlflow.core.task.TaskSpec`.
"""
