"""The tests run against the installed package (make python-tests installs
it with pip first), never the source tree: running from this folder keeps
the source's libbilliard off sys.path."""
import os

import libbilliard

HERE = os.path.dirname(os.path.abspath(__file__))
assert not os.path.abspath(libbilliard.__file__).startswith(os.path.dirname(HERE) + os.sep), \
    f"testing the source tree's libbilliard ({libbilliard.__file__}), not the installed one"
