"""Sanitising submissions for nbgrader's ``autograde``, where nbgrader's own steps break on them.

A learner who splits a grade cell in JupyterLab gives both halves the cell's grade id. nbgrader's
DeduplicateIds then empties the nbgrader metadata of one half (``{}``), which its next step
(CheckCellMetadata) takes for metadata of an old nbgrader version: ``autograde`` stops and the
submission is not graded at all. Here the duplicate loses its nbgrader metadata entirely and is
an ordinary cell; the grade cell that keeps the id is overwritten from the gradebook as usual.
"""

from __future__ import annotations

from nbgrader import utils
from nbgrader.preprocessors import DeduplicateIds, OverwriteCells


class DeduplicateIdsCleanly(DeduplicateIds):
    def preprocess_cell(self, cell, resources, cell_index):
        if not (utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell)):
            return cell, resources
        grade_id = cell.metadata.nbgrader["grade_id"]
        if grade_id in self.grade_ids:
            self.log.warning("Cell with id '%s' exists multiple times: the copy becomes an ordinary cell", grade_id)
            del cell.metadata["nbgrader"]
        else:
            self.grade_ids.add(grade_id)
        return cell, resources


class OverwriteCellsRestoringDeleted(OverwriteCells):
    """nbgrader's OverwriteCells, with deleted grade cells put back where they were.

    nbgrader's own ``add_missing_grade_cells`` looks for the deleted cell's predecessor among the
    submission's grade and solution cells only, and raises KeyError when it was a locked Markdown
    cell (as in this course): the submission is then not graded at all. Here the cell goes after
    the nearest earlier cell of the release that the submission still has, or first.
    """

    def add_missing_grade_cells(self, nb, resources):
        source = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        order = [cell.name for cell in source.source_cells]
        cells = {cell.name: cell for cell in source.source_cells}
        solutions = {cell.name for cell in source.solution_cells}
        for grade_cell in source.grade_cells:
            present = [(c.metadata.get("nbgrader") or {}).get("grade_id") for c in nb.cells]
            if grade_cell.name in present:
                continue
            self.log.warning("Missing grade cell %s encountered, adding to notebook", grade_cell.name)
            restored = self.missing_cell_transform(
                cells[grade_cell.name], grade_cell.max_score, is_solution=grade_cell.name in solutions
            )
            earlier = order[: order.index(grade_cell.name)]
            at = max((present.index(name) + 1 for name in earlier if name in present), default=0)
            nb.cells.insert(at, restored)
        return nb, resources
