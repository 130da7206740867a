"""The image-classification service built in this course."""
