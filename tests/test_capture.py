"""Params from a cell's code (literal top-level assignments); the names and values they
redact are tested in test_redact.py."""

from __future__ import annotations

import textwrap

import pytest

from nbtrack.capture.params import literal_assignments
from nbtrack.capture.redact import REDACTED


def _params(source: str) -> dict:
    return literal_assignments(textwrap.dedent(source))


def test_numbers_strings_bools_none() -> None:
    assert _params(
        """
        n_estimators = 200
        lr = 0.1
        big = 1e6
        name = "rf"
        raw = r'C:\\data'
        data = b"bytes"
        shuffle = True
        seed = None
        """
    ) == {
        "n_estimators": 200,
        "lr": 0.1,
        "big": 1e6,
        "name": "rf",
        "raw": "C:\\data",
        "data": b"bytes",
        "shuffle": True,
        "seed": None,
    }


def test_negative_numbers_and_containers_of_literals() -> None:
    got = _params(
        """
        offset = -3
        eps = -1e-8
        layers = [64, 32, -1]
        shape = (28, 28)
        grid = {"depth": [4, 8], "criterion": ("gini", "entropy")}
        empty = []
        nested = [{"a": None}, (1.5, True)]
        """
    )
    assert got == {
        "offset": -3,
        "eps": -1e-8,
        "layers": [64, 32, -1],
        "shape": (28, 28),
        "grid": {"depth": [4, 8], "criterion": ("gini", "entropy")},
        "empty": [],
        "nested": [{"a": None}, (1.5, True)],
    }
    assert type(got["shape"]) is tuple


def test_tuple_unpacking_and_chained_assignment() -> None:
    assert _params("a, b = 1, 'two'") == {"a": 1, "b": "two"}
    assert _params("(x, y), z = (1, 2), 3") == {"x": 1, "y": 2, "z": 3}
    assert _params("[p, q] = [True, None]") == {"p": True, "q": None}
    assert _params("m = n = 5") == {"m": 5, "n": 5}
    # Unpacking a non-literal or a mismatched length binds nothing.
    assert _params("a, b = make_pair()") == {}
    assert _params("a, b = 1, 2, 3") == {}
    assert _params("a, b = [1, 2], f()") == {"a": [1, 2]}  # b is not a literal


def test_annotated_assignment() -> None:
    assert _params("depth: int = 8\nratio: float = 0.5") == {"depth": 8, "ratio": 0.5}
    assert _params("declared_only: int") == {}


def test_reassignment_wins_and_a_non_literal_removes_the_name() -> None:
    assert _params("lr = 0.1\nlr = 0.01") == {"lr": 0.01}
    got = _params(
        """
        lr = 0.1
        depth = 3
        lr = compute_lr()
        depth = depth + 1
        """
    )
    assert got == {}
    assert _params("x = 1\nx, y = f(), 2") == {"y": 2}
    assert _params("x = f()\nx = 2") == {"x": 2}  # a literal again afterwards counts


@pytest.mark.parametrize(
    "source",
    [
        "a = 1\na, b = make_pair()",  # rebound by unpacking a non-literal
        "a = 1\n[a, b] = rows",
        "a = 1\na += 1",  # augmented assignment: the value is no longer the literal
        "a = 1\ndel a",
    ],
)
def test_a_later_non_literal_rebinding_forgets_the_literal(source: str) -> None:
    # The cell's param must be the name's value after the cell runs, or nothing.
    assert "a" not in _params(source)


def test_non_literals_are_ignored() -> None:
    got = _params(
        """
        model = RandomForestClassifier(n_estimators=10)
        total = 1 + 2
        names = [n for n in range(3)]
        text = f"{1}"
        ref = other
        attr.value = 3
        items[0] = 4
        count += 1
        ok = 5
        """
    )
    assert got == {"ok": 5}


def test_private_names_are_skipped() -> None:
    assert _params("_hidden = 1\n__dunder = 2\nvisible = 3") == {"visible": 3}
    assert _params("_, keep = 1, 2") == {"keep": 2}


def test_only_top_level_statements_count() -> None:
    got = _params(
        """
        top = 1
        def f():
            inner = 2
        class C:
            attr = 3
        for i in range(3):
            loop = 4
        if True:
            branch = 5
        with open("x") as fh:
            ctx = 6
        try:
            tried = 7
        except Exception:
            pass
        while False:
            w = 8
        last = 9
        """
    )
    assert got == {"top": 1, "last": 9}


@pytest.mark.parametrize(
    "source",
    [
        "%load_ext nbtrack\nlr = 0.1",
        "%%track --name x\nlr = 0.1",
        "!pip install x\nlr = 0.1",
        "lr = = 0.1",
        "def broken(:\n    pass",
        "lr = 0.1\n  bad_indent = 2",
        "",
    ],
)
def test_magics_and_syntax_errors_give_nothing(source: str) -> None:
    assert literal_assignments(source) == {}


def test_redaction_covers_unpacked_names_and_never_stores_the_value() -> None:
    got = _params("user, password = 'me', 'hunter2'")
    assert got == {"user": "me", "password": REDACTED}
    assert "hunter2" not in repr(got)
