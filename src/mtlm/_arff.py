"""A small reader for dense and sparse ARFF files and MULAN label files.

Only what multi-label datasets need: numeric attributes (``numeric``, ``real``,
``integer``) and nominal attributes whose values are numbers (MULAN labels are
``{0,1}``). ``scipy.io.arff`` cannot read sparse ARFF (``{index value, ...}``
rows), which MULAN uses for its larger datasets, hence this module.
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

__all__ = ["ArffData", "read_arff", "read_mulan_labels"]

_NUMERIC_TYPES = ("numeric", "real", "integer")


@dataclass(frozen=True)
class ArffData:
    """Contents of an ARFF file.

    Attributes
    ----------
    relation : str
        The ``@relation`` name.
    names : list of str
        Attribute names, in column order.
    data : ndarray of shape (n_rows, n_attributes), dtype float64
        The values; missing values (``?``) are NaN.
    """

    relation: str
    names: list
    data: np.ndarray


def read_arff(path):
    """Read a dense or sparse ARFF file with numeric-valued attributes.

    Parameters
    ----------
    path : str or path-like
        The ``.arff`` file.

    Returns
    -------
    ArffData

    Raises
    ------
    ValueError
        If the file is not valid ARFF, has a string/date/relational attribute or a
        nominal attribute with non-numeric values, or a row that does not fit the
        header. The message names the file and, where it applies, the line.
    """
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        lines = fh.read().splitlines()
    relation, names, nominal, start = _parse_header(lines, path)
    defaults = _sparse_defaults(names, nominal)
    rows = _parse_data(lines, start, len(names), defaults, path)
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    _check_nominal(data, names, nominal, path)
    return ArffData(relation=relation, names=names, data=data)


def read_mulan_labels(path):
    """Label names listed in a MULAN label file (``<label name="...">`` elements).

    Parameters
    ----------
    path : str or path-like
        The MULAN ``.xml`` file. Nested (hierarchical) labels are included, in
        document order.

    Returns
    -------
    list of str
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not a valid MULAN label file ({exc}).") from None
    names = [
        el.attrib["name"]
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "label" and "name" in el.attrib
    ]
    if not names:
        raise ValueError(f'{path}: no <label name="..."> element found.')
    return names


def _parse_header(lines, path):
    """Return (relation, names, {column: allowed values}, index of first data line)."""
    relation, names, nominal = "", [], {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        keyword, rest = (line.split(None, 1) + [""])[:2]
        keyword = keyword.lower()
        if keyword == "@relation":
            relation = _unquote(rest)
        elif keyword == "@attribute":
            name, kind = _split_attribute(rest, path, i)
            if kind.startswith("{"):
                nominal[len(names)] = _nominal_values(name, kind, path, i)
            elif kind.lower() not in _NUMERIC_TYPES:
                raise ValueError(
                    f"{path}, line {i + 1}: attribute {name!r} has type {kind!r}; "
                    "only numeric and numeric-valued nominal attributes are supported."
                )
            if name in names:  # ARFF names are unique; a label would be ambiguous
                raise ValueError(
                    f"{path}, line {i + 1}: attribute {name!r} is declared twice."
                )
            names.append(name)
        elif keyword == "@data":
            if not names:
                raise ValueError(f"{path}: no @attribute before @data.")
            return relation, names, nominal, i + 1
        else:
            raise ValueError(f"{path}, line {i + 1}: unexpected header line {line!r}.")
    raise ValueError(f"{path}: no @data section; is this an ARFF file?")


def _split_attribute(rest, path, i):
    """Split ``name type`` of an @attribute line; the name may be quoted."""
    m = re.match(r"""\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)\s+(.+)$""", rest)
    if m is None:
        raise ValueError(f"{path}, line {i + 1}: malformed @attribute line.")
    return _unquote(m.group(1)), m.group(2).strip()


def _nominal_values(name, kind, path, i):
    """Numeric values of a nominal type ``{v1, v2, ...}``."""
    if not kind.endswith("}"):
        raise ValueError(
            f"{path}, line {i + 1}: unterminated nominal type of {name!r}."
        )
    tokens = [_unquote(t) for t in _split_quoted(kind[1:-1])]
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise ValueError(
            f"{path}, line {i + 1}: nominal attribute {name!r} has non-numeric "
            f"values {tokens[:5]}; only numeric values are supported."
        ) from None


def _sparse_defaults(names, nominal):
    """Values of omitted entries in sparse rows: 0, or a nominal's first value."""
    defaults = np.zeros(len(names))
    for j, values in nominal.items():
        defaults[j] = values[0] if len(values) else 0.0
    return defaults


def _parse_data(lines, start, n_cols, defaults, path):
    rows = []
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line or line.startswith("%"):
            continue
        if line.startswith("{"):
            rows.append(_sparse_row(line, n_cols, defaults, path, i))
        else:
            rows.append(_dense_row(line, n_cols, path, i))
    return rows


def _dense_row(line, n_cols, path, i):
    quoted = "'" in line or '"' in line
    tokens = _split_quoted(line) if quoted else line.split(",")
    if len(tokens) != n_cols:
        raise ValueError(
            f"{path}, line {i + 1}: {len(tokens)} values, expected {n_cols} "
            "(one per @attribute)."
        )
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        return np.array([_to_float(t, path, i) for t in tokens])


def _sparse_row(line, n_cols, defaults, path, i):
    end = line.find("}")
    if end < 0:
        raise ValueError(f"{path}, line {i + 1}: sparse row without closing '}}'.")
    row = defaults.copy()
    body = line[1:end].strip()
    seen = set()
    for token in _split_quoted(body) if body else []:
        parts = token.split(None, 1)
        try:
            j = int(parts[0])
        except ValueError:
            j = -1
        if len(parts) != 2 or not 0 <= j < n_cols:
            raise ValueError(
                f"{path}, line {i + 1}: bad sparse entry {token.strip()!r} "
                f"(expected 'index value' with 0 <= index < {n_cols})."
            )
        if j in seen:
            raise ValueError(
                f"{path}, line {i + 1}: sparse index {j} is given twice in one row."
            )
        seen.add(j)
        row[j] = _to_float(parts[1], path, i)
    return row


def _to_float(token, path, i):
    token = _unquote(token)
    if token == "?":
        return np.nan
    try:
        return float(token)
    except ValueError:
        raise ValueError(
            f"{path}, line {i + 1}: value {token!r} is not a number."
        ) from None


def _check_nominal(data, names, nominal, path):
    for j, values in nominal.items():
        col = data[:, j]
        bad = ~(np.isin(col, values) | np.isnan(col))
        if bad.any():
            raise ValueError(
                f"{path}: attribute {names[j]!r} has value {col[bad][0]:g}, "
                f"not among its nominal values {values.tolist()}."
            )


def _split_quoted(text, sep=","):
    """Split on ``sep`` outside single or double quotes (quotes are kept)."""
    tokens, current, quote, escaped = [], [], None, False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == sep:
            tokens.append("".join(current))
            current = []
            continue
        current.append(ch)
    tokens.append("".join(current))
    return tokens


def _unquote(token):
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1].replace("\\" + token[0], token[0])
    return token
