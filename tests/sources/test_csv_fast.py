"""The CSV reader converts chunks of plain lines with np.loadtxt: every value, error
and warning is the one the csv module's path (every chunk, before) gives."""

from __future__ import annotations

import csv
import gzip
import logging
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.errors import InvalidInputError, SourceError
from monitor.sources import files
from monitor.sources.files import read_table

H = "a,b,c\n"
CORPUS: dict[str, bytes] = {
    "plain": (H + "1,2,3\n4.5,-6e-3,7E+2\n").encode(),
    "nan spellings": (
        H + "NA,N/A,null\nNULL,None,#N/A\n,nan,-nan\n<NA>,n/a,#NA\n -1.#IND ,1.#QNAN, NA \n"
    ).encode(),
    "nan in a later row": (H + "1,2,3\n4,,6\n7,8,9\n").encode(),
    "signed zeros and extremes": (
        H + "-0.0,0.0,+0\n1e308,-1e308,1e309\n4.9e-324,2.2250738585072014e-308,1e-400\n"
    ).encode(),
    "inf spellings": (H + "inf,-inf,+inf\nInfinity,-INFINITY,iNf\nNaN,NAN,+nan\n").encode(),
    "many digits": (H + "0.1000000000000000055511151231257827,123456789012345678901,.5\n").encode(),
    "quoted numbers": (H + '"1","2.5",3\n"4",5,"6"\n').encode(),
    "quoted comma": (b'a,"b,c"\n1,"2"\n'),
    "quoted newline": (H + '1,"2\n",3\n4,5,6\n').encode(),
    "crlf": (H + "1,2,3\n4,5,6\n").replace("\n", "\r\n").encode(),
    "crlf and lf mixed": (H + "1,2,3\r\n4,5,6\n7,8,9\r\n").encode(),
    "lone cr": (H.replace("\n", "\r") + "1,2,3\r4,5,6\r").encode(),
    "bom": b"\xef\xbb\xbf" + (H + "1,2,3\n").encode(),
    "no final newline": (H + "1,2,3\n4,5,6").encode(),
    "blank lines": (H + "1,2,3\n\n4,5,6\n\n").encode(),
    "whitespace around numbers": (H + " 1 ,\t2\t,  3\n4 , 5,6 \n").encode(),
    "whitespace only cell": (H + "1, ,3\n").encode(),
    "underscore": (H + "1_000,2,3\n").encode(),
    "control character": (H + "1,\x1c2,3\n").encode(),
    "non-ascii digits": (H + "1,\u0661\u0662,3\n").encode(),
    "text column": (b"host,b,c\nweb-1,2,3\nweb-2,5,6\n"),
    "text in a later row": (H + "1,2,3\n4,x,6\n").encode(),
    "unnamed index column": (b",a,b\n0,1,2\n1,3,4\n"),
    "ragged row": (H + "1,2,3\n4,5\n").encode(),
    "ragged then plain": (H + "1,2,3,4\n5,6,7\n").encode(),
    "semicolons": (b"a;b;c\n1,5;2;3\n"),
    "semicolon header only": (b"a;b;c\n1;2;3\n"),
    "open quote": (H + '1,"2,3\n4,5,6\n').encode(),
    "no header": b"1,2,3\n4,5,6\n",
    "empty": b"",
    "header only": H.encode(),
    "one column": b"a\n1\n\n2\n 3 \n",
    "integers": (H + "1,2,3\n9007199254740993,-12,0\n").encode(),
    "hex and junk": (H + "0x10,1.2.3,1e\n").encode(),
    "long line": (H + "1,2," + "1" * 140_000 + "\n").encode(),
    "nan with digits": (H + "nan(1),1,2\n").encode(),
    "signs and exponents": (H + "+1,-.5,1.e5\n-0,00012,1E-5\n1e400,-1e400,2e-324\n").encode(),
    "empty cell of numbers": (H + "1,,3\n").encode(),
    "duplicate names": (b"a,a,b\n1,2,3\n"),
    "not utf8": (H + "1,2,3\n4,\xe9,6\n").encode("latin-1"),
}


def read(path: Path) -> tuple[Any, ...]:
    """What read_table gives: names, the bits of its values and what it left out, or
    the error; and the warnings."""
    try:
        table = read_table(path)
    except (InvalidInputError, SourceError) as exc:
        return (type(exc).__name__, str(exc))
    return (table.names, table.X.shape, table.X.view(np.int64).tolist(), table.left_out)


def both(path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    new = read(path), list(caplog.messages)
    caplog.clear()
    with monkeypatch.context() as m:
        m.setattr(files, "_plain_chunk", lambda *_: None)  # the csv module reads every row
        old = read(path), list(caplog.messages)
    assert new == old


@pytest.mark.parametrize("rows", [65_536, 2, 1])
@pytest.mark.parametrize("name", list(CORPUS))
@pytest.mark.parametrize("zipped", [False, True])
@pytest.mark.parametrize("arrow", [True, False])
def test_the_plain_path_reads_what_the_csv_module_reads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    rows: int,
    zipped: bool,
    arrow: bool,
) -> None:
    data = CORPUS[name]
    path = tmp_path / ("w.csv.gz" if zipped else "w.csv")
    path.write_bytes(gzip.compress(data) if zipped else data)
    monkeypatch.setattr(files, "CSV_CHUNK_ROWS", rows)  # plain and csv chunks mixed
    if not arrow:  # as without pyarrow installed: np.loadtxt converts
        monkeypatch.setitem(sys.modules, "pyarrow", None)
    caplog.set_level(logging.WARNING)
    both(path, monkeypatch, caplog)


@pytest.mark.parametrize(
    ("name", "arrow"),
    [
        *[("plain", True), ("signed zeros and extremes", True), ("signs and exponents", True)],
        *[("inf spellings", False), ("crlf", True), ("bom", True)],
        *[("whitespace around numbers", False), ("text column", False)],
    ],
)
def test_the_corpus_has_values_the_plain_path_converts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, arrow: bool
) -> None:
    # Without this the comparison above could hold with every chunk sent to the csv module.
    used = []
    real = files._arrow_block
    monkeypatch.setattr(files, "_arrow_block", lambda *a: used.append(1) or real(*a))
    path = tmp_path / "w.csv"
    path.write_bytes(CORPUS[name])
    batch = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)[1:]
    chunk = files._plain_chunk(batch, 3, 2)
    assert chunk is not None and chunk.block is not None
    assert bool(used) == arrow


def test_pyarrow_reads_a_number_to_the_bit_of_float_or_refuses_it() -> None:
    """pyarrow converts a chunk of digits, signs, points and exponents: whatever string
    of those it reads, its number is float()'s, bit for bit."""
    rng = random.Random(5)
    numbers = [repr(rng.random() * 10.0 ** rng.randint(-323, 308)) for _ in range(3000)]
    numbers += [f"{rng.randint(-(10**30), 10**30)}e{rng.randint(-350, 330)}" for _ in range(3000)]
    numbers += ["0." + "".join(rng.choice("0123456789") for _ in range(40)) for _ in range(1000)]
    block = files._arrow_block("".join(f"{n},0\n" for n in numbers).encode(), len(numbers), 2)
    assert block is not None
    expected = np.array([float(n) for n in numbers])
    assert (block[:, 0].view(np.int64) == expected.view(np.int64)).all()
    read = 0
    for _ in range(3000):
        cell = "".join(rng.choice("0123456789.eE+-") for _ in range(rng.randint(1, 7)))
        block = files._arrow_block(f"{cell},0\n".encode(), 1, 2)
        if block is not None:
            read += 1
            assert np.float64(float(cell)).view(np.int64) == block[0, 0].view(np.int64), cell
    assert read > 500


def test_a_csv_of_numbers_is_not_parsed_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The csv module read every row into lists of strings: 16 to 30 times pandas'
    read_csv (12.1 s for a 196 MB file); only the header is its now."""
    X = np.random.default_rng(3).normal(size=(300, 4))
    path = tmp_path / "w.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c,d", comments="")
    records: list[list[str]] = []
    real = csv.reader

    class Reader:  # csv.reader, its records counted
        def __init__(self, lines: Any) -> None:
            self._reader = real(lines)

        def __iter__(self) -> Reader:
            return self

        def __next__(self) -> list[str]:
            records.append(next(self._reader))
            return records[-1]

        @property
        def line_num(self) -> int:
            return self._reader.line_num

    monkeypatch.setattr(files.csv, "reader", Reader)
    monkeypatch.setattr(files, "CSV_CHUNK_ROWS", 100)
    np.testing.assert_array_equal(read_table(path).X, X)
    assert records == [["a", "b", "c", "d"]]


def test_reading_an_npy_or_parquet_file_tells_how_many_of_its_bytes_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """choose-k on a 2 GB NPY or Parquet file was silent for ~18 s: only a CSV read told
    how far it was."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.random.default_rng(8).normal(size=(5000, 3))
    np.save(tmp_path / "w.npy", X)
    np.save(tmp_path / "f.npy", np.asfortranarray(X.astype(">f4")))
    table = pa.table({name: X[:, j] for j, name in enumerate("abc")})
    pq.write_table(table, tmp_path / "w.parquet", row_group_size=1000)
    monkeypatch.setattr(files, "NPY_READ_BYTES", 30_000)
    for name, parts, expected in [
        ("w.npy", 4, X),
        ("f.npy", 2, X.astype(">f4").astype(np.float64)),
        ("w.parquet", 5, X),
    ]:
        path = tmp_path / name
        heard: list[tuple[int, int]] = []
        got = read_table(path, progress=lambda done, total, h=heard: h.append((done, total))).X
        np.testing.assert_array_equal(got, expected)
        assert np.array_equal(read_table(path).X, got)
        size = path.stat().st_size
        assert len(heard) == parts and {total for _, total in heard} == {size}, (name, heard)
        done = [d for d, _ in heard]
        assert done == sorted(done) and 0 < done[0] < size, (name, heard)
    assert heard[-1][0] > 0.9 * size  # the footer is what a Parquet read leaves
