"""``python -I run.py ROOT MODULE:FUNCTION``: the first thing a probe process runs.

Isolated mode (-I) keeps the environment's PYTHONPATH and the current folder off the path; this
makes the folder holding the probes package importable, then hands over to its harness.
"""

import importlib
import sys
from pathlib import Path

package = Path(__file__).resolve().parent
sys.path.insert(0, str(package.parent))
sys.exit(importlib.import_module(f"{package.name}.harness").main(sys.argv))
