"""Probes: the code that calls a learner's functions inside the sandbox and reports what came back.

This package runs *inside* the sandbox, copied there as ``course_probes``: it imports nothing
from the rest of the autograder and decides no verdict. Each probe is a function of JSON
arguments that returns raw observations (what the learner's code returned or raised); the
checks compare them, in the grader's process, with what the grader computed itself. The
harness (``harness.py``) is the process's entry point.
"""
