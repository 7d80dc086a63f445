"""Close-range optical ice segmentation: RGB photos from shore cameras, ships and drones, labelled pixel
by pixel with ice forms and scene classes.

``labels`` reads the class table a user gives (PixelAnnotationTool ``config.json`` or a river-ice class
file) and makes the task's :class:`~seaice_mlflow.core.task.TaskSpec`; ``readers`` opens the users'
folders unchanged in the three published layouts; ``inspect`` checks a folder before a long job;
``synthetic`` writes photos in the PixelAnnotationTool layout for tests and demos.
"""
