"""Loaded by tests/pytest.ini (``-p``) before Django's settings: the test suite runs in
development mode (local defaults such as the ``*.localhost`` tenant domains), and so do the
worker and web processes that tests start, which inherit this environment."""

import os

os.environ["VIGIL_ENV"] = "development"
