"""Pieces of probe code that several steps' probes share (they run in the learner's process)."""

# Defines stubbed_functions(module): the names of functions whose own body (not a nested
# function's) still raises NotImplementedError, i.e. the exercise stubs nbgrader left in the
# student version.
STUBBED_FUNCTIONS = """
import ast as _ast, inspect as _inspect

def stubbed_functions(module):
    found = set()

    def visit(node, owner):
        for child in _ast.iter_child_nodes(node):
            if isinstance(child, (_ast.FunctionDef, _ast.AsyncFunctionDef)):
                visit(child, child.name)
            else:
                if owner and isinstance(child, _ast.Raise) and "NotImplementedError" in _ast.unparse(child.exc or child):
                    found.add(owner)
                visit(child, owner)

    visit(_ast.parse(_inspect.getsource(module)), None)
    return sorted(found)
"""
