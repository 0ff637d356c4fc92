"""Reading an uploaded CSV file: its encoding, its delimiter, its records.

Encoding, by a fixed rule over the stdlib codecs (no guessing library: the rule
is short and its answer predictable):

- a byte order mark names it: UTF-8 (EF BB BF), UTF-16 LE (FF FE) or BE (FE FF);
- otherwise the whole file is checked as UTF-8 (incrementally, a megabyte at a
  time): valid UTF-8 is UTF-8, anything else is Windows-1252, the encoding of
  spreadsheets saved as "CSV" on Western Windows; a byte Windows-1252 leaves
  undefined then means the file is not text.

Delimiter: `,` `;` or tab, the one that splits the header into the most columns
and the first records into as many (ties: `,`). Records are read by the csv
module (strict), so quoted fields may hold delimiters, quotes ("") and newlines,
and a malformed quote is an error naming its line.

A file that is not text (NUL or other control bytes, an undefined byte), has no
header, or repeats a header name is refused whole (NotCsv), before anything is
stored.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from shared.errors import Unprocessable

DELIMITERS = (",", ";", "\t")
_SAMPLE_BYTES = 64 * 1024
_SAMPLE_RECORDS = 20
_BLOCK = 1 << 20
# C0 controls other than tab, LF and CR: a text file has none of them.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# csv's field limit is 128 KiB; a custom text field holds up to 10,000 characters,
# and longer fields are reported by the row checks rather than failing the file.
csv.field_size_limit(1 << 20)


class NotCsv(Unprocessable):
    code = "not_csv"


@dataclass(frozen=True)
class CsvFormat:
    encoding: str  # a Python codec name
    delimiter: str
    header: list[str]


def detect_encoding(file: IO[bytes]) -> str:
    """The file's encoding by the rule above; the file is left at its start."""
    file.seek(0)
    head = file.read(4)
    file.seek(0)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while block := file.read(_BLOCK):
            decoder.decode(block)
        decoder.decode(b"", final=True)
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "cp1252"
    file.seek(0)
    return encoding


def _text(file: IO[bytes], encoding: str) -> io.TextIOWrapper:
    # newline="": the csv module sees line endings as written (quoted newlines kept)
    return io.TextIOWrapper(file, encoding=encoding, errors="strict", newline="")


def sniff(file: IO[bytes]) -> CsvFormat:
    """Encoding, delimiter and header of the file, or NotCsv; the file is left at its start."""
    encoding = detect_encoding(file)
    text = _text(file, encoding)
    try:
        sample = text.read(_SAMPLE_BYTES)
    except UnicodeDecodeError as exc:
        raise NotCsv(f"The file is not text in {encoding}: {exc.reason}") from exc
    finally:
        text.detach()
        file.seek(0)
    if _BINARY.search(sample):
        raise NotCsv("The file is not a CSV file: it holds binary data")
    lines = sample.splitlines(keepends=True)
    if len(sample) == _SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of a cut sample may be incomplete
    delimiter, header = _delimiter(lines)
    header = [h.strip() for h in header]
    if not any(header):
        raise NotCsv("The file is not a CSV file: its first line, the header, is empty")
    named = [h for h in header if h]
    if len(set(named)) != len(named):
        repeated = sorted({h for h in named if named.count(h) > 1})
        raise NotCsv(f"The header repeats the column names {repeated}")
    return CsvFormat(encoding=encoding, delimiter=delimiter, header=header)


def _delimiter(lines: list[str]) -> tuple[str, list[str]]:
    best: tuple[tuple[int, int], str, list[str]] | None = None
    for delimiter in DELIMITERS:
        try:
            records = [r for r in csv.reader(lines, delimiter=delimiter) if r]
        except csv.Error:
            continue
        if not records:
            continue
        width = len(records[0])
        steady = sum(len(r) == width for r in records[1 : _SAMPLE_RECORDS + 1])
        score = (width if width > 1 else 0, steady)
        if best is None or score > best[0]:
            best = (score, delimiter, records[0])
    if best is None:
        raise NotCsv("The file is not a CSV file: no header could be read")
    return best[1], best[2]


def records(file: IO[bytes], fmt: CsvFormat) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of every record after the header; blank lines are skipped.

    `line` is the line the record starts on (the header is line 1). A malformed
    record or text the encoding cannot read raises NotCsv naming the line."""
    file.seek(0)
    text = _text(file, fmt.encoding)
    # strict: a stray quote or a quote left open at the end is an error naming the line,
    # not a field that silently swallows the rest of the file
    reader = csv.reader(text, delimiter=fmt.delimiter, strict=True)
    line = 1
    try:
        next(reader, None)
        while True:
            line = reader.line_num + 1
            fields = next(reader, None)
            if fields is None:
                return
            if fields and fields != [""]:
                yield line, fields
    except (csv.Error, UnicodeDecodeError) as exc:
        raise NotCsv(f"Line {line} cannot be read: {exc}") from exc
    finally:
        text.detach()
