"""Finds the library and the package: LIBBILLIARD_PATH may name the built
libbilliard.so (make test sets it); the package is imported from the source."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
