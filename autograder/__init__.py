"""Autograder for the ResNet50 service course.

Layers (each imports only the layers below it; see course_docs/architecture.md):
  1. ``autograder.checks``   one module per step; pure check functions returning CheckResult
  2. ``autograder.runners``  the only code that runs things: Python probes, notebooks, Docker
  3. ``autograder.release``  nbgrader glue: solutions/ -> exercises/
     ``autograder.grading``  wires checks to runners for one workspace
  4. ``autograder.reports``  terminal table, notebook table, JSON
  5. ``autograder.cli``      argument parsing only
"""

__version__ = "0.1.0"
