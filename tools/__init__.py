"""Developer workflow around the pipeline, not part of the ``ich`` library: run by the Makefile
and the tests from a checkout (``make review``, ``make share``, work copies of the project)."""
