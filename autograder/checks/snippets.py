"""Pieces of probe code that several steps' probes share (they run in the learner's process)."""

# Defines stubbed_functions(module): the names of functions whose body still raises
# NotImplementedError, i.e. the exercise stubs nbgrader left in the student version.
STUBBED_FUNCTIONS = """
import ast as _ast, inspect as _inspect

def stubbed_functions(module):
    tree = _ast.parse(_inspect.getsource(module))
    found = []
    for node in _ast.walk(tree):
        if isinstance(node, (_ast.FunctionDef, _ast.AsyncFunctionDef)):
            for inner in _ast.walk(node):
                if isinstance(inner, _ast.Raise) and "NotImplementedError" in _ast.unparse(inner.exc or inner):
                    found.append(node.name)
                    break
    return sorted(set(found))
"""
