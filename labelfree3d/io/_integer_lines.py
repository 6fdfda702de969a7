"""Text files with one integer per line, one line per vertex: ScanNet's benchmark layouts.

ScanNet's benchmark stores predicted masks (nonzero = in the mask) and ground truth
(``label * 1000 + instance``) this way, and reads them with
``np.array(open(f).read().splitlines(), dtype=np.int64)`` (~5-10 ms for 80k vertices). Here
the common layouts are decoded from the bytes instead:

* "0\\n"/"1\\n" lines (every mask writer we know): a check and a comparison on the raw bytes,
  ~0.1 ms (`binary_lines`);
* other unsigned integers of up to 18 digits (ground truth's ``3005``): numpy's C text
  parser, ~2-3 ms, after checking that the bytes are digits and single newlines
  (`integer_lines`);
* anything else (signs, blanks around the numbers) goes line by line with `int()`, ~20 ms,
  which also finds the line to name when one is not an integer.

Both accept what ScanNet's loader accepts, plus a missing final newline, Windows line ends and
blank lines at the very end of the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError

__all__ = ["binary_lines", "integer_lines", "normalise_lines"]

_NEWLINE, _ZERO = ord("\n"), ord("0")
_ONE_LINE = np.uint16(ord("1") | ord("\n") << 8)  # b"1\n" read as a little-endian uint16


def normalise_lines(data: bytes) -> bytes:
    """`data` with "\\r\\n" line ends as "\\n", without trailing blank lines, ending in one "\\n" (b"" stays b"")."""
    if b"\r" in data:  # Windows line ends (a lone "\r" is left for the line-by-line path)
        data = data.replace(b"\r\n", b"\n")
    # no final newline, or a blank (or blank-ended) last line; a lone b"\n" is a blank line too
    if data[-1:] != b"\n" or data[-2:-1].isspace() or len(data) == 1:
        data = data.rstrip(b" \t\n\f\v") + b"\n"  # rare: copies the buffer once
        if data == b"\n":
            return b""
    return data


def binary_lines(data: bytes) -> np.ndarray | None:
    """(N,) bool, True on "1" lines, when normalised `data` is only "0\\n"/"1\\n" lines; else None."""
    if len(data) % 2:
        return None
    # each line is one little-endian 16-bit word: b"0\n" = 0x0A30, b"1\n" = 0x0A31, and these two
    # are the only words that OR 1 turns into 0x0A31 (one pass to check, one to decode)
    words = np.frombuffer(data, dtype="<u2")
    if np.all((words | 1) == _ONE_LINE):
        return words == _ONE_LINE
    return None


def integer_lines(data: bytes, path: str | Path, what: str) -> np.ndarray:
    """(N,) int64, the integer on each line of normalised `data`.

    Args:
        data: the file's bytes after `normalise_lines`.
        path: the file, for the error message.
        what: what the file should be, for the error message ("mask file").

    Raises:
        FormatError (naming the file): a line that is not exactly one integer (blank, two
            numbers, a float, text), or a value outside int64.
    """
    if not data:
        return np.empty(0, dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    newline = buf == _NEWLINE
    if np.all(((buf - _ZERO) <= 9) | newline) and buf[0] != _NEWLINE and not np.any(newline[1:] & newline[:-1]):
        # only digits, no blank line, at most 18 digits a line: numpy's C parser reads exactly
        # one value per line and cannot overflow (it would saturate silently, and it takes
        # "-" alone or "- 5", so signs and blanks go line by line)
        ends = np.flatnonzero(newline)
        if ends[0] <= 18 and (ends.shape[0] == 1 or np.diff(ends).max() <= 19):
            return np.fromstring(data, dtype=np.int64, sep="\n")
    return _line_by_line(data, path, what)


def _line_by_line(data: bytes, path: str | Path, what: str) -> np.ndarray:
    values = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            values.append(int(line))  # int() takes signs and blanks around the digits, as ScanNet's loader does
        except ValueError:
            shown = line[:40].decode("utf-8", "replace")
            raise FormatError(f"not a {what} (one integer per vertex line): line {number} is {shown!r}", path) from None
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        raise FormatError(
            f"not a {what} (one integer per vertex line): a value does not fit in 64 bits", path
        ) from None
