"""nbgrader glue: generating the student release (exercises/) from the sources (solutions/)."""
