import sys

# Compiled modules and pytest's assertion rewrites may be cached in __pycache__
# (ignored by git) even where PYTHONDONTWRITEBYTECODE is set: this package is
# imported before any test module or module of ours (tests/conftest.py says why).
sys.dont_write_bytecode = False
