"""nbgrader's configuration for this course: run nbgrader's commands from the repository root
(``nbgrader generate_assignment resnet-service``, ``autograde``, ``formgrader``...). The settings
themselves are in autograder/release/nbgrader_setup.py, which ``python -m autograder release``
applies too."""

from autograder.release.nbgrader_setup import configure

configure(get_config())  # noqa: F821 - nbgrader defines get_config() for its config files
