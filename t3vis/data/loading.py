"""Loading labelled examples from the files researchers have: CSV, TSV, JSONL, Parquet, `datasets` folders.

Real files are messy (see ``../shared/data/README.md``): CRLF line endings and bare carriage
returns inside lines, quote characters in TSV text, files that are not UTF-8, text columns
named differently in each split. Each quirk is either handled or refused with a
:class:`~t3vis.errors.DataError` that names the problem and the option that fixes it.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from t3vis.errors import DataError, option

_FORMAT = option("file_format", flag="--format")  # how messages name the format setting
SUPPORTED_FORMATS = ("csv", "tsv", "jsonl", "parquet", "hf", "trec")
TEXT_COLUMN_GUESSES = ("text", "sentence", "content", "question", "review", "document", "article")
LABEL_COLUMN_GUESSES = ("label", "labels", "class", "category", "target")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".label": "trec"}


@dataclass(frozen=True)
class ExampleSet:
    """Labelled examples ready for a model."""

    example_ids: np.ndarray  # (N,) int64, unique
    texts: list[str]  # (N,) first text column
    text_pairs: list[str] | None  # (N,) second text column of pair tasks, else None
    labels: np.ndarray  # (N,) int64 in [0, len(label_names))
    label_names: list[str]
    extra: pd.DataFrame  # (N, k) the file's other columns, JSON-serialisable values
    text_columns: tuple[str, ...]
    label_column: str
    source: str

    def __len__(self) -> int:
        return len(self.texts)


# -- reading files ----------------------------------------------------------------------------


def read_table(path: str | Path, *, file_format: str | None = None, encoding: str = "utf-8",
               split: str | None = None) -> pd.DataFrame:
    """Read a data file into a DataFrame of its raw columns.

    Parameters
    ----------
    path : str or Path
        A file (.csv, .tsv, .jsonl, .parquet, TREC .label) or a ``datasets`` folder (save_to_disk).
    file_format : str, optional
        One of SUPPORTED_FORMATS; default: from the extension (a folder is ``hf``).
    encoding : str
        Text encoding of text formats.
    split : str, optional
        The split of a ``DatasetDict`` folder.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist. Check {option('path', flag='--data')}.")
    file_format = file_format or _infer_format(path)
    if file_format not in SUPPORTED_FORMATS:
        raise DataError(f"Unknown format {file_format!r}; use {_FORMAT} with one of {', '.join(SUPPORTED_FORMATS)}.")
    if file_format == "hf":
        return _read_hf_folder(path, split)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give a data file, or "
                        f"{option('file_format', 'hf', flag='--format')} for a `datasets` folder.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes).")
    if file_format == "parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise DataError(f"{path} is not a readable Parquet file: {exc}") from exc
    text = _decode(path, encoding)
    if file_format == "jsonl":
        return _parse_jsonl(text, path)
    if file_format == "trec":
        return _parse_trec(text, path)
    return _parse_delimited(text, path, delimiter="\t" if file_format == "tsv" else ",")


def _infer_format(path: Path) -> str:
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix not in _EXTENSIONS:
        raise DataError(
            f"Cannot tell the format of {path.name} from its extension; pass {_FORMAT} with one of "
            f"{', '.join(SUPPORTED_FORMATS)}."
        )
    return _EXTENSIONS[suffix]


def _decode(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex().upper()
        raise DataError(
            f"{path.name} is not valid {encoding}: byte 0x{byte} at offset {exc.start} (line {line}). "
            f"If the file is Latin-1 (ISO-8859-1) or Windows-1252, pass {option('encoding', 'latin-1')} "
            "(or 'cp1252')."
        ) from exc
    except LookupError as exc:
        raise DataError(
            f"Unknown text encoding {encoding!r}; pass e.g. {option('encoding', 'utf-8')} or 'latin-1'."
        ) from exc
    text = text.removeprefix("\ufeff")
    # Line endings: CRLF and LF end a line; a bare CR inside a line (SST-2 has them) is a space.
    text = text.replace("\r\n", "\n").replace("\r", " ")
    if not text.strip():
        raise DataError(f"{path.name} contains no rows (only whitespace).")
    return text


def _parse_delimited(text: str, path: Path, *, delimiter: str) -> pd.DataFrame:
    kind = "TSV" if delimiter == "\t" else "CSV"
    # TSV text often holds quote characters (SST-2: `" the film "`); quoting would swallow lines.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader)
        rows = []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise DataError(
                    f"{path.name} is not a well-formed {kind} file: line {reader.line_num} has {len(row)} fields "
                    f"but the header has {len(header)}. Fix that line (or pass {_FORMAT} if it is not {kind})."
                )
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{path.name} is not a well-formed {kind} file (line {reader.line_num}): {exc}.") from exc
    except StopIteration:
        raise DataError(f"{path.name} contains no rows.") from None
    frame = pd.DataFrame(rows, columns=header, dtype=object).replace("", None)
    first = header[0] if header else None
    if first is not None and (first == "" or first.startswith("Unnamed: 0")):
        frame = frame.drop(columns=[first])  # a pandas-written index column
    return _infer_column_types(frame)


def _infer_column_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn string columns that hold only integers into integer columns (labels like "0"/"1")."""
    for column in frame.columns:
        values = frame[column]
        if values.isna().any():
            continue
        converted = pd.to_numeric(values, errors="coerce")
        if converted.notna().all() and (converted == converted.round()).all() and values.str.strip().str.match(
                r"^[+-]?\d+$").all():
            frame[column] = converted.astype(np.int64)
    return frame


def _parse_jsonl(text: str, path: Path) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name} line {number} is not valid JSON: {exc.msg}.") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path.name} line {number} is a JSON {type(record).__name__}, not an object; "
                            "JSON lines files need one object per line.")
        records.append(record)
    if not records:
        raise DataError(f"{path.name} contains no rows.")
    return pd.DataFrame.from_records(records)


def _parse_trec(text: str, path: Path) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        label, _, question = line.partition(" ")
        if ":" not in label or not question:
            raise DataError(f"{path.name} line {number} is not `COARSE:fine question`: {line[:60]!r}.")
        rows.append((label.split(":", 1)[0], label, question.strip()))
    if not rows:
        raise DataError(f"{path.name} contains no rows.")
    return pd.DataFrame(rows, columns=["label", "label_fine", "text"])


def _read_hf_folder(path: Path, split: str | None) -> pd.DataFrame:
    """Read a ``datasets`` save_to_disk folder with pyarrow (the ``datasets`` library is not needed)."""
    import pyarrow as pa

    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            if split is None and len(splits) == 1:
                split = splits[0]
            else:
                raise DataError(f"{path} is a DatasetDict with splits {splits}; choose one with {option('split')}.")
        path = path / split
    state_file = path / "state.json"
    if not state_file.is_file():
        raise DataError(f"{path} is not a `datasets` folder written by save_to_disk (it has no state.json).")
    state = json.loads(state_file.read_text())
    tables = []
    for entry in state.get("_data_files", []):
        with pa.memory_map(str(path / entry["filename"])) as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    if not tables:
        raise DataError(f"{path} lists no data files in state.json.")
    frame = pa.concat_tables(tables).to_pandas()
    frame.attrs["class_label_names"] = _class_label_names(path)
    return frame


def _class_label_names(path: Path) -> dict[str, list[str]]:
    """Names of ClassLabel features, and of sequences of them (a token-classification dataset's tags),
    from dataset_info.json."""
    info_file = path / "dataset_info.json"
    if not info_file.is_file():
        return {}
    features = json.loads(info_file.read_text()).get("features", {}) or {}
    found = {}
    for name, feature in features.items():
        if isinstance(feature, dict) and feature.get("_type") in ("Sequence", "List"):
            feature = feature.get("feature")
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
            found[name] = list(feature["names"])
    return found


# -- choosing columns and labels --------------------------------------------------------------


def load_examples(
    path: str | Path,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    id_column: str | None = None,
    split: str | None = None,
    encoding: str = "utf-8",
    file_format: str | None = None,
    limit: int | None = None,
) -> ExampleSet:
    """Read labelled examples from a file.

    Parameters
    ----------
    path : str or Path
        See :func:`read_table`.
    text_columns : sequence of str, optional
        One column, or two for sentence pairs; default: detected (``text``, ``sentence``, ...).
    label_column : str, optional
        Default: detected (``label``, ``labels``, ...).
    label_names : sequence of str, optional
        Label names in id order. String labels are mapped by position in it; integer labels
        must be below its length. Default: a ClassLabel's names, else the sorted strings found,
        else ``"0"``, ``"1"``, ... up to the largest id.
    id_column : str, optional
        Integer column of unique example ids; default: row numbers from 0.
    limit : int, optional
        Keep the first ``limit`` rows (at least 1).
    """
    if limit is not None and limit < 1:
        raise DataError(f"{option('limit')} must be at least 1 (the number of examples to use), not {limit}.")
    frame = read_table(path, file_format=file_format, encoding=encoding, split=split)
    if frame.empty:
        raise DataError(f"{Path(path).name} contains no rows (only a header).")
    columns = [str(column) for column in frame.columns]
    texts = tuple(text_columns) if text_columns else (_guess_text_column(frame, path),)
    if len(texts) > 2:
        raise DataError(f"At most two text columns (a sentence pair) are supported, got {list(texts)}.")
    for column in texts:
        _require_column(column, columns, option("text_columns", flag="--text-column"), path)
    label_column = label_column or _guess_column(LABEL_COLUMN_GUESSES, columns, "label", option("label_column"), path)
    _require_column(label_column, columns, option("label_column"), path)
    if id_column:
        _require_column(id_column, columns, option("id_column"), path)
    if limit is not None:
        frame = frame.iloc[:limit].reset_index(drop=True)

    class_names = frame.attrs.get("class_label_names", {}).get(label_column)
    labels, names = _encode_labels(frame[label_column], label_names or class_names, path)
    text_values = [_text_column(frame[column], column, path) for column in texts]
    example_ids = _example_ids(frame, id_column, path)
    extra = frame.drop(columns=[*texts, label_column] + ([id_column] if id_column else []))
    return ExampleSet(
        example_ids=example_ids,
        texts=text_values[0],
        text_pairs=text_values[1] if len(text_values) > 1 else None,
        labels=labels,
        label_names=names,
        extra=_jsonable_frame(extra),
        text_columns=texts,
        label_column=label_column,
        source=str(path),
    )


def _require_column(column: str, columns: list[str], flag: str, path) -> None:
    if column in columns:
        return
    close = difflib.get_close_matches(column, columns, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataError(f"{Path(path).name} has no column {column!r}.{hint} Its columns are {columns}; fix {flag}.")


def _guess_column(guesses, columns: list[str], what: str, flag: str, path) -> str:
    lowered = {column.lower(): column for column in columns}
    for guess in guesses:
        if guess in lowered:
            return lowered[guess]
    raise DataError(f"Cannot tell which column of {Path(path).name} holds the {what}; its columns are "
                    f"{columns}. Pass {flag}.")


def _guess_text_column(frame: pd.DataFrame, path) -> str:
    columns = [str(column) for column in frame.columns]
    lowered = {column.lower(): column for column in columns}
    for guess in TEXT_COLUMN_GUESSES:
        if guess in lowered:
            return lowered[guess]
    strings = [column for column in columns if frame[column].map(lambda v: isinstance(v, str)).all()]
    if len(strings) == 1:
        return strings[0]
    return _guess_column((), columns, "text", option("text_columns", flag="--text-column"), path)


def _rows(mask: np.ndarray) -> str:
    """1-based data row numbers of the first few True entries."""
    rows = (np.flatnonzero(mask)[:5] + 1).tolist()
    more = " ..." if mask.sum() > 5 else ""
    return f"{rows}{more}"


def _missing(values: pd.Series) -> np.ndarray:
    return (values.isna() | values.map(lambda v: isinstance(v, str) and not v.strip())).to_numpy()


def _text_column(values: pd.Series, column: str, path) -> list[str]:
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(f"{Path(path).name}: column {column!r} has no text in data rows {_rows(missing)}. "
                        "Fill or drop those rows.")
    return [str(value) for value in values]


def _encode_labels(values: pd.Series, label_names: Sequence[str] | None, path) -> tuple[np.ndarray, list[str]]:
    name = Path(path).name
    missing = _missing(values)
    if missing.any():
        raise DataError(f"{name}: column {values.name!r} has no label in data rows {_rows(missing)}. "
                        "Every example needs a gold label; fill or drop those rows.")
    as_numbers = pd.to_numeric(values, errors="coerce")
    if as_numbers.notna().all():
        numbers = as_numbers.to_numpy(dtype=np.float64)
        fractional = numbers != np.round(numbers)
        if fractional.any():
            raise DataError(f"{name}: labels must be class ids or names; rows {_rows(fractional)} hold "
                            "fractional numbers (regression is not supported).")
        labels = numbers.astype(np.int64)
        limit = len(label_names) if label_names is not None else None
        bad = (labels < 0) | (labels >= limit if limit is not None else False)
        if bad.any():
            found = sorted(set(labels[bad].tolist()))[:10]
            allowed = f"[0, {limit})" if limit is not None else "non-negative"
            raise DataError(f"{name}: labels out of range: {found} in data rows {_rows(bad)}; ids must be "
                            f"{allowed}. Check {option('label_column')} and {option('label_names')}.")
        names = list(label_names) if label_names is not None else [str(i) for i in range(int(labels.max()) + 1)]
        return labels, [str(n) for n in names]
    strings = values.astype(str).str.strip()
    names = list(label_names) if label_names is not None else sorted(strings.unique())
    index = {str(label): position for position, label in enumerate(names)}
    unknown = ~strings.isin(list(index)).to_numpy()
    if unknown.any():
        found = sorted(set(strings[unknown]))[:10]
        raise DataError(f"{name}: labels {found} (data rows {_rows(unknown)}) are not among the label names "
                        f"{names}. Fix {option('label_names')} or {option('label_column')}.")
    return strings.map(index).to_numpy(dtype=np.int64), [str(n) for n in names]


def _example_ids(frame: pd.DataFrame, id_column: str | None, path) -> np.ndarray:
    if id_column is None:
        return np.arange(len(frame), dtype=np.int64)
    ids = pd.to_numeric(frame[id_column], errors="coerce")
    if ids.isna().any() or (ids != ids.round()).any():
        raise DataError(f"{Path(path).name}: {option('id_column')} {id_column!r} must hold integers; rows "
                        f"{_rows(ids.isna().to_numpy())} do not. Omit {option('id_column')} to use row numbers.")
    ids = ids.to_numpy(dtype=np.int64)
    duplicated = pd.Series(ids).duplicated().to_numpy()
    if duplicated.any():
        raise DataError(f"{Path(path).name}: {option('id_column')} {id_column!r} has repeated ids in rows "
                        f"{_rows(duplicated)}; ids must be unique.")
    return ids


def _jsonable_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The extra columns with values JSON can hold (arrays to lists, NaN to None)."""
    frame = frame.reset_index(drop=True).copy()
    for column in frame.columns:
        frame[column] = frame[column].map(_jsonable_value)
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _jsonable_value(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)
