"""Which names and values are secrets, and text and code with them replaced by ``<redacted>``.

A name is secret by its words, not its letters: ``hf_token``, ``HF_TOKEN``, ``hfToken``,
``aws-secret-access-key`` and ``db_password`` are; ``max_tokens``, ``tokenizer``,
``token_pattern``, ``key_dim`` and ``sort_key`` are not. A value is secret by its shape
(``sk-…``, ``ghp_…``, ``AKIA…``, a JWT, a PEM private key, ...) whatever its name; of a URL
only the password goes (``postgres://ann:<redacted>@db/x``), so the URL stays readable.
:func:`set_secret_names` and the environment variables ``NBTRACK_SECRET_NAMES`` and
``NBTRACK_NOT_SECRET_NAMES`` add and exempt names.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

REDACTED = "<redacted>"

# -- names ------------------------------------------------------------------------------------

# A name holding one of these words is secret: `db_password`, `client_secret`, `SECRETS`.
_SECRET_WORDS = frozenset(
    "password passwords passwd pwd passphrase secret secrets credential credentials creds "
    "authorization apikey apikeys accesskey privatekey secretkey authtoken accesstoken".split()
)
# "key" alone is a dict's or a sort's (`key`, `sort_key`, `key_dim`); after these, a credential.
_KEY_KINDS = frozenset(
    "api access private secret auth encryption signing ssh master license subscription "
    "account app client consumer".split()
)
# These end secret names (`token`, `hf_token`, `GITHUB_TOKEN`, `basic_auth`). Elsewhere
# (`token_pattern`, `token_type_ids`) and after the words below (`pad_token`, `max_token`)
# they belong to a tokenizer.
_LAST_WORDS = frozenset({"token", "auth"})
_NOT_SECRET_BEFORE_LAST = frozenset(
    "pad eos bos sos unk cls sep mask start end stop special image audio video text "
    "max min num n first last next new input output".split()
)
# Words of a name: `HFToken` -> HF, Token; `aws-secret_key2` -> aws, secret, key.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
# Names users list, by whether they are secret: the environment's, and set_secret_names's.
_VARIABLES = {True: "NBTRACK_SECRET_NAMES", False: "NBTRACK_NOT_SECRET_NAMES"}
_listed: dict[bool, tuple[tuple[str, ...], ...]] = {True: (), False: ()}


def is_secret_name(name: str) -> bool:
    """True for names like ``api_key``, ``HF_TOKEN``, ``dbPassword``, ``client_secret``."""
    words, secret = _builtin(name)
    listed = _listed_verdict(words)
    return secret if listed is None else listed


def set_secret_names(secret: Iterable[str] = (), not_secret: Iterable[str] = ()) -> None:
    """Treat more names as secret, or exempt names the built-in rules take for secret.

    Names compare by their words, whatever the case and separators (``CARD_PIN`` is
    ``cardPin``). A secret name also covers the names ending with it: ``"pin"`` covers
    ``pin``, ``card_pin`` and ``clf__pin``. A name that is not secret covers only itself,
    and wins: ``secret=["key"], not_secret=["sort_key"]`` keeps ``sort_key``. Each call
    replaces the previous one's names; the environment variables ``NBTRACK_SECRET_NAMES``
    and ``NBTRACK_NOT_SECRET_NAMES`` (comma-separated, read at each use, so kernels, the
    CLI and ``nbtrack run`` children all see them) add to them. A credential-shaped value
    (``sk-…``, ``ghp_…``) is redacted whatever its name.

    Parameters
    ----------
    secret
        Names whose values are never stored, e.g. ``["pin", "wandb_key"]``.
    not_secret
        Names stored as they are though they look secret, e.g. ``["pwd"]`` for a path.

    Raises
    ------
    TypeError
        If a list is given as one string.
    ValueError
        If a name has no letters, or is in both lists.
    """
    lists = {True: _parsed(secret, "secret"), False: _parsed(not_secret, "not_secret")}
    both = sorted(set(lists[True]) & set(lists[False]))
    if both:
        raise ValueError(
            f"set_secret_names: {'_'.join(both[0])!r} is in both secret and not_secret; "
            "keep it in one of them."
        )
    _listed.update(lists)


def _words(name: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _WORD.findall(name))


@functools.lru_cache(maxsize=4096)  # names recur: every cell, every param, every dict key
def _builtin(name: str) -> tuple[tuple[str, ...], bool]:
    """The words of ``name``, and whether the built-in rules find it secret."""
    words = _words(name)
    for before, word in zip(("", *words), words, strict=False):
        if word in _SECRET_WORDS or (word in ("key", "keys") and before in _KEY_KINDS):
            return words, True
    if not words or words[-1] not in _LAST_WORDS:
        return words, False
    return words, len(words) == 1 or words[-2] not in _NOT_SECRET_BEFORE_LAST


def _parsed(names: Iterable[str], argument: str) -> tuple[tuple[str, ...], ...]:
    if isinstance(names, str):
        raise TypeError(f"set_secret_names: {argument} takes a list of names, not {names!r}.")
    parsed = []
    for name in names:
        words = _words(name)
        if not words:
            raise ValueError(
                f"set_secret_names: {name!r} in {argument} has no letters; names are matched "
                "by their words."
            )
        parsed.append(words)
    return tuple(parsed)


@functools.lru_cache(maxsize=8)
def _from_variable(value: str) -> tuple[tuple[str, ...], ...]:
    return tuple(words for words in map(_words, value.split(",")) if words)


def _listed_verdict(words: tuple[str, ...]) -> bool | None:
    """False if ``words`` are a name listed as not secret, True if they end with one listed
    as secret, else None."""
    if words in _listed[False] + _from_variable(os.environ.get(_VARIABLES[False], "")):
        return False
    for entry in _listed[True] + _from_variable(os.environ.get(_VARIABLES[True], "")):
        if words[-len(entry) :] == entry:
            return True
    return None


# -- values -----------------------------------------------------------------------------------


def _mixed(chars: str, length: int, *classes: str) -> str:
    """A run of ``length`` or more ``chars`` with each of ``classes`` in its first 200:
    generated keys mix them; words and model names (``sk-learn-v2``) do not. (Bounded,
    so that a long run of ``sk-sk-…`` costs linear time.)"""
    ahead = "".join(f"(?=[{chars}]{{0,200}}[{c}])" for c in classes)
    return f"{ahead}[{chars}]{{{length},}}"


# Credentials known by their shape, each starting a word; the whole match goes.
_CREDENTIALS = [
    r"sk-" + _mixed(r"\w-", 20, "A-Z", "a-z", "0-9"),  # OpenAI, Anthropic
    r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"gh[pousr]_[A-Za-z0-9]{30,}",  # GitHub
    r"github_pat_\w{30,}",
    r"glpat-[\w-]{20,}",  # GitLab
    r"(?:AKIA|ASIA)[A-Z0-9]{16}\b",  # AWS access key ids
    r"AIza[\w-]{35}",  # Google
    r"xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*",  # JWT: base64url of '{"', '{"', signature
    r"(?<=[Bb]earer )" + _mixed(r"\w.~+/=-", 16, "0-9"),
    r"(?<=[Bb]asic )" + _mixed(r"\w+/=", 16, "0-9"),
]
_CREDENTIAL = re.compile(
    # One leading \b for all: the scan then skips most positions at once.
    rf"\b(?:{'|'.join(_CREDENTIALS)})"
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)",
    re.ASCII,
)
# The password of a URL's user: `scheme://user:password@host`.
_URL_PASSWORD = re.compile(r"(://[^\s/:@]*:)[^\s/@]+(?=@)")
# `name=value` (arguments, query and connection strings, code that does not parse) and
# `"name": value` (JSON, reprs): the value goes when the name is secret.
_PAIRS = (
    re.compile(
        r"""(?P<head>(?<![\w.-])(?P<name>[\w.-]+)\s*(?::\s*[\w.\[\]]+\s*)?=(?!=)\s*)"""
        r"""(?P<value>'[^'\n]*'|"[^"\n]*"|[^\s&;,'"()\[\]{}]+)"""
    ),
    re.compile(
        r"""(?P<head>(?P<quote>["'])(?P<name>[\w .-]+)(?P=quote)\s*:\s*)"""
        r"""(?P<value>'[^'\n]*'|"[^"\n]*"|[^\s,}\]]+)"""
    ),
)


def redact(name: str, value: Any) -> Any:
    """``value`` as it may be stored under ``name``.

    ``<redacted>`` if the name is secret (``None`` and booleans, which hold no secret, are
    kept). A string loses its credential-shaped parts, URL passwords and the values of
    secret ``name=value`` and ``"name": value`` pairs (``postgres://ann:<redacted>@db``,
    ``?api_key=<redacted>&n=5``). The items of a dict, list, tuple or set are redacted
    in turn, a dict's under their keys.
    """
    if is_secret_name(name) and value is not None and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: redact(k if isinstance(k, str) else "", v) for k, v in value.items()}
    if type(value) in (list, tuple, set, frozenset):  # not subclasses: a namedtuple's
        return type(value)(redact("", v) for v in value)  # constructor takes no iterable
    return value


def _redact_text(text: str) -> str:
    """``text`` with credential-shaped values, URL passwords and the values of secret
    ``name=value`` and ``"name": value`` pairs replaced by ``<redacted>``."""
    return _redact_shapes(_redact_pairs(text))


def _redact_pairs(text: str) -> str:
    for pattern in _PAIRS:
        text = pattern.sub(_pair, text)
    return text


def _pair(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if len(value) > 1 and value[0] in "'\"" else ""
    if not is_secret_name(match["name"]):
        # A quoted value may hold pairs of its own: "Server=db;Password=...".
        return match[0] if not quote else match["head"] + _redact_pairs(value)
    return f"{match['head']}{quote}{REDACTED}{quote}"


def _redact_shapes(text: str) -> str:
    return _URL_PASSWORD.sub(rf"\1{REDACTED}", _CREDENTIAL.sub(REDACTED, text))


# -- code -------------------------------------------------------------------------------------

_MAGIC = re.compile(r"^([ \t]*)[%!].*$", re.MULTILINE)


def redact_source(source: str) -> str:
    """``source`` with its secrets replaced by ``<redacted>``.

    Literals bound to secret names go: ``api_key = "..."``, ``token: str = "..."``,
    ``os.environ["HF_TOKEN"] = "..."``, ``OpenAI(api_key="...")``, ``{"secret": "..."}``,
    ``def login(password="...")``, ``os.environ.setdefault("API_KEY", "...")``. Strings
    lose the values of their secret ``name=value`` pairs, and the whole text (comments and
    f-strings too) its credential-shaped values. Magic and shell lines (``%%track --param
    token=...``, ``%env HF_TOKEN=...``), and code that does not parse even without them,
    are redacted as string values are (:func:`redact`).
    """
    # The names configured now are part of the key: a cell run again under the same
    # configuration is redacted once (each costs two or three parses, ~0.2 ms).
    return _redacted_source(source, _configuration())


def _configuration() -> tuple[object, ...]:
    return (*_listed.values(), *(os.environ.get(v, "") for v in _VARIABLES.values()))


@functools.lru_cache(maxsize=256)
def _redacted_source(source: str, configuration: tuple[object, ...]) -> str:
    if not _may_name_secrets(source):  # most cells: only values can be secret, by shape
        return _redact_shapes(source)
    magics: list[re.Match[str]] = []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        magics = list(_MAGIC.finditer(source))
        try:
            tree = ast.parse(_MAGIC.sub(r"\1pass", source))  # same lines, same offsets
        except SyntaxError:
            return _redact_text(source)
    data = source.encode()
    offsets = _line_offsets(data)
    nodes = list(ast.walk(tree))
    edits = {_span(node, offsets): repr(REDACTED) for node in _secret_literals(nodes)}
    for node in _strings(nodes):
        start, end = span = _span(node, offsets)
        edits.setdefault(span, _redact_pairs(data[start:end].decode()))
    for match in magics:
        start = len(source[: match.start()].encode())
        edits[start, start + len(match[0].encode())] = _redact_text(match[0])
    return _redact_shapes(_edited(data, edits).decode())


# A secret name holds one of these words (its words are pieces of it, lower-cased).
_NAME_WORDS = tuple(sorted(_SECRET_WORDS | _LAST_WORDS | {"key"}))


def _may_name_secrets(source: str) -> bool:
    """False when no name in ``source`` can be secret: none of the words that make one
    appears in it, not even inside another word. Saves the parse of most cells."""
    text = source.lower()
    listed = _listed[True] + _from_variable(os.environ.get(_VARIABLES[True], ""))
    return any(word in text for word in _NAME_WORDS) or any(e[-1] in text for e in listed)


def _edited(data: bytes, edits: dict[tuple[int, int], str]) -> bytes:
    """``data`` with each span replaced; of overlapping spans the outer one (a string
    holding a masked magic line), which starts first."""
    kept: list[tuple[int, int]] = []
    for span in sorted(edits, key=lambda s: (s[0], -s[1])):
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    for start, end in reversed(kept):
        data = data[:start] + edits[start, end].encode() + data[end:]
    return data


def _secret_literals(nodes: list[ast.AST]) -> Iterator[ast.expr]:
    """The literal values the code binds to secret names."""
    for target, value in _bindings(nodes):
        if _secret_target(target):
            yield from _literals(value)


def _bindings(nodes: list[ast.AST]) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, value): assignments, keyword arguments, dict items, parameter defaults,
    and each argument of a call with the one after it (``setdefault("API_KEY", "...")``)."""
    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _unpacked(target, node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            yield node.target, node.value
        elif isinstance(node, ast.keyword) and node.arg:
            yield ast.Name(node.arg), node.value
        elif isinstance(node, ast.Dict):
            yield from (
                (k, v) for k, v in zip(node.keys, node.values, strict=True) if k is not None
            )
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            with_defaults = positional[len(positional) - len(node.defaults) :]
            for arg, default in [
                *zip(with_defaults, node.defaults, strict=True),
                *zip(node.kwonlyargs, node.kw_defaults, strict=True),
            ]:
                if default is not None:
                    yield ast.Name(arg.arg), default
        elif isinstance(node, ast.Call):
            yield from zip(node.args, node.args[1:], strict=False)


def _unpacked(target: ast.expr, value: ast.expr) -> Iterator[tuple[ast.expr, ast.expr]]:
    """``a, b = 1, 2`` as ``a = 1`` and ``b = 2``."""
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
        if len(target.elts) == len(value.elts):
            for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                yield from _unpacked(sub_target, sub_value)
    else:
        yield target, value


def _secret_target(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return is_secret_name(node.id)
    if isinstance(node, ast.Attribute):
        return is_secret_name(node.attr)
    if isinstance(node, ast.Subscript):
        return _secret_target(node.slice)
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and is_secret_name(node.value)
    )


def _literals(node: ast.expr) -> Iterator[ast.expr]:
    """The constants and f-strings of a literal value, except None and booleans."""
    if isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant)
        and node.value is not None
        and node.value is not True
        and node.value is not False
    ):
        yield node
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for element in node.elts:
            yield from _literals(element)
    elif isinstance(node, ast.Dict):
        for element in node.values:
            yield from _literals(element)


def _strings(nodes: list[ast.AST]) -> Iterator[ast.Constant]:
    """String constants, except the parts of f-strings (edited by shape, as text)."""
    parts = {
        id(part) for node in nodes if isinstance(node, ast.JoinedStr) for part in ast.walk(node)
    }
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            yield node


def _line_offsets(data: bytes) -> list[int]:
    offsets = [0]
    for line in data.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return offsets


def _span(node: ast.expr, offsets: list[int]) -> tuple[int, int]:
    """Byte offsets of ``node`` in the source (ast columns count UTF-8 bytes)."""
    start = offsets[node.lineno - 1] + node.col_offset
    end = offsets[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
    return start, end
