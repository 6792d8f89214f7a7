"""The test suite (tests/README.md).

Bytecode: where the environment sets PYTHONDONTWRITEBYTECODE (container images often do), every test
process would compile the project's modules from source, and so would every bot subprocess a test
starts (~0.25 s of CPU each, and ~30 ms per extension load in each in-process bot start). The suite
writes the project's bytecode once, into the ignored ``__pycache__`` folders; subprocesses read it.
"""

import sys

sys.dont_write_bytecode = False
