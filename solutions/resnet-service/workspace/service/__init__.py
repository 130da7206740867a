"""The image-classification service built in this course."""

__version__ = "0.1.0"
