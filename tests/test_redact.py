"""Secret redaction: names judged by their words, values by their shape, code by its parts,
and the names users add or exempt (by function and by environment variable)."""

from __future__ import annotations

import pytest

import nbtrack
from nbtrack.capture import redact as redaction
from nbtrack.capture.params import literal_assignments
from nbtrack.capture.redact import (
    REDACTED,
    is_secret_name,
    redact,
    redact_source,
    set_secret_names,
)

VARIABLES = ("NBTRACK_SECRET_NAMES", "NBTRACK_NOT_SECRET_NAMES")


@pytest.fixture(autouse=True)
def no_configured_names(monkeypatch: pytest.MonkeyPatch):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    set_secret_names()
    yield
    set_secret_names()


# -- names --------------------------------------------------------------------------------------

SECRET_NAMES = [
    "password",
    "passwd",
    "pwd",
    "DB_PASSWORD",
    "dbPassword",
    "passphrase",
    "secret",
    "SECRETS",
    "client_secret",
    "token",
    "Token",
    "auth_token",
    "hf_token",
    "HF_TOKEN",
    "hfToken",
    "HFToken",
    "access_token",
    "github_token",
    "github_Token_2",
    "refresh_token",
    "AWS_SESSION_TOKEN",
    "use_auth_token",
    "clf__api_token",  # a nested sklearn param
    "credential",
    "credentials",
    "creds",
    "api_key",
    "apikey",
    "APIKEY",
    "apiKey",
    "OPENAI_API_KEY",
    "X-Api-Key",
    "api.key",
    "api_keys",
    "access_key",
    "AWS_ACCESS_KEY_ID",
    "private_key",
    "privateKey",
    "secret_key",
    "aws_secret_access_key",
    "aws-secret-access-key",
    "ssh_key",
    "encryption_key",
    "basic_auth",
    "authorization",
]
ORDINARY_NAMES = [
    "max_tokens",
    "max_new_tokens",
    "n_tokens",
    "num_tokens",
    "tokens",
    "tokens_per_batch",
    "tokenizer",
    "tokenizer_name",
    "token_pattern",
    "vect__token_pattern",
    "token_type_ids",
    "pad_token",
    "eos_token",
    "pad_token_id",
    "max_token",
    "key",
    "keys",
    "key_dim",
    "sort_key",
    "num_keys",
    "primary_key",
    "keyword",
    "keywords",
    "keyfile",  # names a file; a key inside a value is caught by its shape
    "monkey",
    "hotkey",
    "passport",
    "bypass",
    "secretary",
    "author",
    "auth_mode",
    "lr",
    "n_estimators",
    "max_depth",
    "batch_size",
    "model_name",
    "_",
    "x2",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_redacted_in_values_params_and_code(name: str) -> None:
    assert is_secret_name(name)
    assert redact(name, "hunter2") == REDACTED
    assert redact("config", {name: "hunter2", "lr": 0.1}) == {name: REDACTED, "lr": 0.1}
    if name.isidentifier():
        assert literal_assignments(f"{name} = 'hunter2'\nlr = 0.1") == {name: REDACTED, "lr": 0.1}
        assert redact_source(f"{name} = 'hunter2'") == f"{name} = '<redacted>'"


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_ordinary_names_are_kept_in_values_params_and_code(name: str) -> None:
    assert not is_secret_name(name)
    assert redact(name, "hunter2") == "hunter2"
    if name.isidentifier() and not name.startswith("_"):
        assert literal_assignments(f"{name} = 'hunter2'") == {name: "hunter2"}
        assert redact_source(f"{name} = 'hunter2'") == f"{name} = 'hunter2'"


def test_none_and_booleans_under_secret_names_are_kept() -> None:
    # They hold no secret, and `use_auth_token = True` says how the code ran.
    assert literal_assignments("hf_token = None\nuse_auth_token = True\napi_key = 0") == {
        "hf_token": None,
        "use_auth_token": True,
        "api_key": REDACTED,
    }


# -- values -------------------------------------------------------------------------------------

OPENAI = "sk-" + "T3BlbkFJ" * 6
CREDENTIALS = {
    # value under an innocent name: what is stored
    OPENAI: REDACTED,
    "sk-proj-Xy9_" + "aB3-cD4_eF5" * 8: REDACTED,
    "sk-ant-api03-" + "Zq8wE2rT5yU" * 8: REDACTED,
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc": REDACTED,
    "ghp_" + "aBcD1234eFgH5678iJkL9012mNoP3456qRsT": REDACTED,
    "gho_" + "16C7e42F292c6912E7710c838347Ae178B4a": REDACTED,
    "github_pat_11ABCDEFG0" + "aBcDeFgHiJ1234567890_" * 3: REDACTED,
    "AKIAIOSFODNN7EXAMPLE": REDACTED,
    "ASIAY34FZKBOKMUTVV7A": REDACTED,
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fw": (
        REDACTED
    ),
    "xoxb-263594206564-FGqddMF8t08v8N7Oq4i57vs1": REDACTED,
    "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh": REDACTED,
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKC\n-----END RSA PRIVATE KEY-----": REDACTED,
    "Bearer 8f14e45fceea167a5a36dedd4bea2543": f"Bearer {REDACTED}",
    "Basic dXNlcjpwYXNzd29yZDEyMw==": f"Basic {REDACTED}",
    "postgres://ann:hunter2@db.internal:5432/runs": f"postgres://ann:{REDACTED}@db.internal:5432/runs",
    "redis://:s3cret@cache:6379/0": f"redis://:{REDACTED}@cache:6379/0",
    "https://api.example.com/v1?api_key=abc123&limit=5": (
        f"https://api.example.com/v1?api_key={REDACTED}&limit=5"
    ),
    "Server=db;Uid=ann;Pwd=hunter2;": f"Server=db;Uid=ann;Pwd={REDACTED};",
    '{"user": "ann", "password": "hunter2"}': f'{{"user": "ann", "password": "{REDACTED}"}}',
    "Tree(api_token='tok-5up3r', max_depth=2)": f"Tree(api_token='{REDACTED}', max_depth=2)",
    f"curl -H 'Authorization: Bearer {OPENAI}'": f"curl -H 'Authorization: Bearer {REDACTED}'",
}
ORDINARY_VALUES = [
    "sk-learn",
    "scikit-learn",
    "sk-learn-pipeline-v2-final-model",  # long, but no capitals: a name, not a key
    "sk-" + "a" * 40,
    "hf_bert_base_uncased",
    "bert-base-uncased",
    "ghp_short",
    "AKIA",
    "eyJ",
    "Bearer of bad news",
    "Bearer authentication-scheme",
    "Basic training schedule",
    "/home/ann/data/tokens.txt",
    "s3://bucket/keys/part-0001.parquet",
    "postgres://db.internal:5432/runs",
    "https://example.com:443/a?x=1&email=ann@example.com",
    "ssh://git@github.com/ann/repo.git",
    "550e8400-e29b-41d4-a716-446655440000",
    "3f2a9c0e1b7d4c5a8e6f0a1b2c3d4e5f6a7b8c9d",  # a git sha
    "max_tokens=256",
    "key_dim=64, sort_key=name",
    '{"tokenizer": "bpe", "max_tokens": 256}',
    "(?u)\\b\\w\\w+\\b",  # CountVectorizer's token_pattern
    "",
]


@pytest.mark.parametrize("value", CREDENTIALS)
def test_credential_shaped_values_are_redacted_under_any_name(value: str) -> None:
    assert redact("note", value) == CREDENTIALS[value]
    assert redact("notes", [value]) == [CREDENTIALS[value]]
    assert literal_assignments(f"note = {value!r}") == {"note": CREDENTIALS[value]}


@pytest.mark.parametrize("value", ORDINARY_VALUES)
def test_ordinary_values_are_kept(value: str) -> None:
    assert redact("note", value) == value
    assert redact_source(f"note = {value!r}") == f"note = {value!r}"


def test_redaction_is_idempotent_and_linear_on_pathological_text() -> None:
    for value, redacted in CREDENTIALS.items():
        assert redact("note", redacted) == redacted, value
    # Runs that look like the start of a credential, again and again (once quadratic).
    assert redact("note", "sk-" * 30_000) == "sk-" * 30_000
    assert redact("note", "Bearer " * 30_000) == "Bearer " * 30_000


# -- code ---------------------------------------------------------------------------------------

SOURCES = {
    # source: redacted source
    'max_tokens = 5\ntokenizer = "bpe"\nkey_dim = 64\napi_key = "abc"': (
        "max_tokens = 5\ntokenizer = \"bpe\"\nkey_dim = 64\napi_key = '<redacted>'"
    ),
    'client = OpenAI(api_key="abc", max_tokens=5)': (
        "client = OpenAI(api_key='<redacted>', max_tokens=5)"
    ),
    f"client = OpenAI({OPENAI!r})": "client = OpenAI('<redacted>')",
    'token: str = "abc"\nuser, password = "ann", "pw"': (
        "token: str = '<redacted>'\nuser, password = \"ann\", '<redacted>'"
    ),
    'os.environ["OPENAI_API_KEY"] = "abc"\nos.environ.setdefault("HF_TOKEN", "def")': (
        "os.environ[\"OPENAI_API_KEY\"] = '<redacted>'\n"
        "os.environ.setdefault(\"HF_TOKEN\", '<redacted>')"
    ),
    'def login(user, password="pw", *, token="t"):\n    self.secret = "s"': (
        "def login(user, password='<redacted>', *, token='<redacted>'):\n"
        "    self.secret = '<redacted>'"
    ),
    'headers = {"Authorization": f"Bearer {tok}", "X-Api-Key": "abc", "n": 1}': (
        'headers = {"Authorization": \'<redacted>\', "X-Api-Key": \'<redacted>\', "n": 1}'
    ),
    'auth = ("ann", "pw")\napi_key = os.environ["API_KEY"]': (
        "auth = ('<redacted>', '<redacted>')\napi_key = os.environ[\"API_KEY\"]"
    ),
    'db = "postgres://ann:pw@db/runs"\nconn = "Server=db;Password=pw"': (
        'db = "postgres://ann:<redacted>@db/runs"\nconn = "Server=db;Password=<redacted>"'
    ),
    f"# my key: {OPENAI}\nmsg = f'{{tok}} {OPENAI}'": (
        "# my key: <redacted>\nmsg = f'{tok} <redacted>'"
    ),
    '%%track --param max_tokens=5 --param api_key=abc\nmax_tokens = 5\nhf_token = "abc"': (
        "%%track --param max_tokens=5 --param api_key=<redacted>\n"
        "max_tokens = 5\nhf_token = '<redacted>'"
    ),
    '%env HF_TOKEN=abc\nfor x in y:\n    %time f(x)\n    password = "pw"\nkey_dim = 64': (
        "%env HF_TOKEN=<redacted>\nfor x in y:\n    %time f(x)\n"
        "    password = '<redacted>'\nkey_dim = 64"
    ),
    # IPython syntax that does not parse even without magic lines: redacted as text.
    'files = !ls\napi_key = "abc"\nclient = OpenAI(api_key="abc", max_tokens=5)': (
        'files = !ls\napi_key = "<redacted>"\nclient = OpenAI(api_key="<redacted>", max_tokens=5)'
    ),
    's = "é"; api_key = "ü"; n = "ok"': 's = "é"; api_key = \'<redacted>\'; n = "ok"',
    "x = (a\n% b)\nmax_tokens = 5": "x = (a\n% b)\nmax_tokens = 5",
}


@pytest.mark.parametrize("source", SOURCES)
def test_code_keeps_ordinary_values_and_loses_secrets(source: str) -> None:
    assert redact_source(source) == SOURCES[source]


# -- configuration ------------------------------------------------------------------------------


def test_names_added_by_function_cover_names_ending_with_them() -> None:
    set_secret_names(secret=["pin", "wandb_key"])
    for name in ("pin", "card_pin", "CARD_PIN", "cardPin", "clf__pin", "WANDB_KEY", "wandbKey"):
        assert is_secret_name(name), name
    for name in ("spin", "pin_length", "wandb_project"):
        assert not is_secret_name(name), name
    assert literal_assignments("card_pin = 1234\nn = 1") == {"card_pin": REDACTED, "n": 1}
    assert redact_source("card_pin = 1234") == "card_pin = '<redacted>'"

    set_secret_names()  # each call replaces the last
    assert not is_secret_name("card_pin")


def test_names_exempted_by_function_cover_only_themselves_and_win() -> None:
    set_secret_names(not_secret=["pwd", "sort_key"])
    assert literal_assignments("pwd = '/data'\ndb_pwd = 'pw'") == {
        "pwd": "/data",
        "db_pwd": REDACTED,
    }
    assert not is_secret_name("PWD")
    set_secret_names(secret=["key"], not_secret=["sort_key"])
    assert is_secret_name("key") and is_secret_name("cache_key")
    assert not is_secret_name("sort_key")
    # A credential-shaped value is redacted whatever its name.
    set_secret_names(not_secret=["note"])
    assert redact("note", OPENAI) == REDACTED


def test_names_from_environment_variables_are_read_at_each_use(monkeypatch) -> None:
    assert not is_secret_name("vocab_size")
    monkeypatch.setenv("NBTRACK_SECRET_NAMES", " vocab_size, wandbKey ,")
    monkeypatch.setenv("NBTRACK_NOT_SECRET_NAMES", "pwd")
    assert is_secret_name("VOCAB_SIZE") and is_secret_name("wandb_key")
    assert literal_assignments("vocab_size = 32000\npwd = '/data'") == {
        "vocab_size": REDACTED,
        "pwd": "/data",
    }
    set_secret_names(secret=["pin"])  # the function's names and the variables' add up
    assert is_secret_name("pin") and is_secret_name("vocab_size")
    monkeypatch.delenv("NBTRACK_SECRET_NAMES")
    assert not is_secret_name("vocab_size")


def test_a_cell_redacted_before_is_redacted_again_after_the_names_change(monkeypatch) -> None:
    cell = "card_pin = 1234\nvocab_size = 32000\n"
    assert redact_source(cell) == cell  # now remembered for this configuration
    set_secret_names(secret=["pin"])
    assert redact_source(cell) == "card_pin = '<redacted>'\nvocab_size = 32000\n"
    monkeypatch.setenv("NBTRACK_SECRET_NAMES", "vocab_size")
    assert redact_source(cell) == "card_pin = '<redacted>'\nvocab_size = '<redacted>'\n"
    set_secret_names()
    monkeypatch.delenv("NBTRACK_SECRET_NAMES")
    assert redact_source(cell) == cell


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"secret": "pin"}, TypeError, "secret takes a list of names, not 'pin'"),
        ({"not_secret": "pwd"}, TypeError, "not_secret takes a list of names"),
        ({"secret": ["pin", "__"]}, ValueError, "'__' in secret has no letters"),
        ({"secret": ["pin"], "not_secret": ["PIN"]}, ValueError, "'pin' is in both"),
    ],
)
def test_bad_names_are_refused_and_change_nothing(arguments, error, message) -> None:
    set_secret_names(secret=["seed"])
    with pytest.raises(error, match=message):
        set_secret_names(**arguments)
    assert is_secret_name("seed") and not is_secret_name("pin")


def test_set_secret_names_is_exported_at_the_top_level() -> None:
    assert "set_secret_names" in nbtrack.__all__
    assert nbtrack.set_secret_names is redaction.set_secret_names
