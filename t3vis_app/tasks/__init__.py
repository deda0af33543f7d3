"""The app side of the task seam: what the pages show differently for each task."""
