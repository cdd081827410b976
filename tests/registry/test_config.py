from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from package_storage.errors import ConfigError
from package_storage.registry.config import (
    FLAGS,
    FlagOrigin,
    FlagValueError,
    Settings,
    check_flags,
    check_settings,
    describe,
    format_go_duration,
    load_config_file,
    parse_config_text,
    parse_go_bool,
    parse_go_duration,
    parse_go_duration_ns,
    parse_go_int,
    parse_log_level,
    settings_from_flags,
)

# --- Go value syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_go_bool_true(text: str) -> None:
    assert parse_go_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_go_bool_false(text: str) -> None:
    assert parse_go_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "tRUE", "2", " true", "on"])
def test_parse_go_bool_invalid(text: str) -> None:
    with pytest.raises(ConfigError, match=r'strconv.ParseBool: parsing ".*": invalid syntax'):
        parse_go_bool(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("4", 4), ("+4", 4), ("-3", -3), ("0x10", 16), ("0o17", 15), ("017", 15), ("0b101", 5)],
)
def test_parse_go_int(text: str, value: int) -> None:
    assert parse_go_int(text) == value


@pytest.mark.parametrize("text", ["", "1.5", "abc", "08", "1_000_", "0x"])
def test_parse_go_int_invalid(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid syntax"):
        parse_go_int(text)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("10s", 10 * 10**9),
        ("10m", 600 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("500ms", 500 * 10**6),
        ("1.5h", 5400 * 10**9),
        ("-1s", -(10**9)),
        ("+2m", 120 * 10**9),
        ("1us", 1000),
        ("1µs", 1000),
        ("3ns", 3),
        (".5s", 5 * 10**8),
        ("1h2m3s4ms", (3723 * 1000 + 4) * 10**6),
    ],
)
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("s", 'time: invalid duration "s"'),
        ("-", 'time: invalid duration "-"'),
        ("10", 'time: missing unit in duration "10"'),
        ("1h30", 'time: missing unit in duration "1h30"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("10 s", 'time: unknown unit " s" in duration "10 s"'),
    ],
)
def test_parse_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_go_duration_ns(text)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=10), "10s"),
        (timedelta(minutes=10), "10m0s"),
        (timedelta(hours=1, minutes=30), "1h30m0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(microseconds=3), "3µs"),
        (timedelta(hours=24), "24h0m0s"),
    ],
)
def test_format_go_duration(value: timedelta, text: str) -> None:
    assert format_go_duration(value) == text


def test_parse_go_duration_timedelta() -> None:
    assert parse_go_duration("1h30m") == timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("text", "level"),
    [("", "info"), ("debug", "debug"), ("WARN", "warn"), ("dpanic", "dpanic"), ("FATAL", "fatal")],
)
def test_parse_log_level(text: str, level: str) -> None:
    assert parse_log_level(text) == level


@pytest.mark.parametrize("text", ["warning", "Info", "trace"])
def test_parse_log_level_invalid(text: str) -> None:
    with pytest.raises(ConfigError, match=f'unrecognized level: "{text}"'):
        parse_log_level(text)


# --- flags and environment ---------------------------------------------------------------------


def test_defaults() -> None:
    s = settings_from_flags({}, {})
    assert s.address == "localhost:8080"
    assert s.config_path == "config.yml"
    assert s.dry_run is False
    assert s.require_package_signatures is True
    assert s.allow_unknown_query_parameters is True
    assert s.package_paths_enable_watcher is False
    assert s.package_paths_workers >= 1
    assert s.log_level == "info"
    assert s.log_type == "ecs"
    assert s.tls_min_version == ""
    assert s.metrics_address == ""
    assert s.server == "uvicorn"
    assert s.cache_time_index == timedelta(seconds=10)
    assert s.cache_time_search == timedelta(minutes=10)
    assert s.cache_time_categories == timedelta(minutes=10)
    assert s.cache_time_catch_all == timedelta(minutes=10)


def test_every_flag_has_its_epr_env_name() -> None:
    names = {f.name: f.env for f in FLAGS}
    assert names["dry-run"] == "EPR_DRY_RUN"
    assert names["require-package-signatures"] == "EPR_REQUIRE_PACKAGE_SIGNATURES"
    assert names["package-paths-workers"] == "EPR_PACKAGE_PATHS_WORKERS"
    assert names["server"] == "PACKAGE_STORAGE_SERVER"


def test_precedence_command_line_over_env_over_default() -> None:
    env = {"EPR_ADDRESS": "127.0.0.1:1", "EPR_REQUIRE_PACKAGE_SIGNATURES": "false"}
    s = settings_from_flags({}, env)
    assert s.address == "127.0.0.1:1"
    assert s.require_package_signatures is False
    s = settings_from_flags({"address": "127.0.0.1:2", "require-package-signatures": "1"}, env)
    assert s.address == "127.0.0.1:2"
    assert s.require_package_signatures is True
    s = settings_from_flags({"address": None}, env)
    assert s.address == "127.0.0.1:1"


def test_env_values_parsed() -> None:
    env = {
        "EPR_DRY_RUN": "t",
        "EPR_PACKAGE_PATHS_WORKERS": "3",
        "EPR_LOG_LEVEL": "debug",
        "EPR_TLS_MIN_VERSION": "1.3",
        "EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS": "0",
        "PACKAGE_STORAGE_SERVER": "granian",
        "EPR_UNRELATED": "x",
    }
    s = settings_from_flags({}, env)
    assert s.dry_run is True
    assert s.package_paths_workers == 3
    assert s.log_level == "debug"
    assert s.tls_min_version == "1.3"
    assert s.allow_unknown_query_parameters is False
    assert s.server == "granian"


def test_env_error_texts() -> None:
    with pytest.raises(FlagValueError) as info:
        settings_from_flags({}, {"EPR_DRY_RUN": "yes"})
    assert info.value.message == "failed to set -dry-run: parse error"
    assert info.value.origin is FlagOrigin.ENVIRONMENT
    with pytest.raises(FlagValueError, match="failed to set -package-paths-workers: parse error"):
        settings_from_flags({}, {"EPR_PACKAGE_PATHS_WORKERS": "two"})
    with pytest.raises(FlagValueError, match="failed to set -tls-min-version: unsupported TLS"):
        settings_from_flags({}, {"EPR_TLS_MIN_VERSION": "1.0"})
    with pytest.raises(FlagValueError, match='failed to set -log-level: unrecognized level: "x"'):
        settings_from_flags({}, {"EPR_LOG_LEVEL": "x"})


def test_empty_env_boolean_is_an_error_like_the_reference() -> None:
    with pytest.raises(FlagValueError, match="failed to set -dry-run: parse error"):
        settings_from_flags({}, {"EPR_DRY_RUN": ""})


def test_every_bad_env_value_is_reported() -> None:
    with pytest.raises(FlagValueError) as info:
        settings_from_flags({}, {"EPR_DRY_RUN": "x", "EPR_TLS_MIN_VERSION": "9"})
    assert info.value.message.splitlines() == [
        "failed to set -dry-run: parse error",
        "failed to set -tls-min-version: unsupported TLS version: 9",
    ]


def test_bad_env_value_fails_even_when_command_line_sets_it() -> None:
    # the reference applies the environment first, then the command line
    with pytest.raises(FlagValueError, match="failed to set -dry-run"):
        settings_from_flags({"dry-run": "true"}, {"EPR_DRY_RUN": "maybe"})


def test_command_line_error_texts() -> None:
    with pytest.raises(FlagValueError) as info:
        settings_from_flags({"dry-run": "maybe"}, {})
    assert info.value.origin is FlagOrigin.COMMAND_LINE
    assert info.value.message == 'invalid boolean value "maybe" for -dry-run: parse error'
    with pytest.raises(FlagValueError) as info:
        settings_from_flags({"tls-min-version": "1.0"}, {})
    assert info.value.message == (
        'invalid value "1.0" for flag -tls-min-version: unsupported TLS version: 1.0'
    )


def test_unknown_flag_name() -> None:
    with pytest.raises(ConfigError, match="flag provided but not defined: -nope"):
        settings_from_flags({"nope": "1"}, {})


def test_check_flags_errors() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^-tls-min-version set but missing TLS cert and key files \(-tls-cert and -tls-key\)$",
    ):
        check_flags(Settings(tls_min_version="1.2", tls_cert="c.pem"))
    with pytest.raises(ConfigError, match=r"^package-paths-workers must be greater than 0$"):
        check_flags(Settings(package_paths_workers=0))
    with pytest.raises(ConfigError, match='invalid logger type "json"'):
        check_flags(Settings(log_type="json"))
    check_flags(Settings(tls_min_version="1.2", tls_cert="c.pem", tls_key="k.pem"))


def test_tls_minimum() -> None:
    import ssl

    assert Settings(tls_min_version="1.3").tls_minimum is ssl.TLSVersion.TLSv1_3
    assert Settings().tls_minimum is None


def test_watcher_without_paths() -> None:
    with pytest.raises(ConfigError, match=r"^no package paths configured, cannot enable watcher$"):
        check_settings(Settings(package_paths_enable_watcher=True))
    check_settings(Settings(package_paths_enable_watcher=True, package_paths=("a",)))


# --- config file -------------------------------------------------------------------------------


def test_config_flat_keys() -> None:
    text = """
package_paths:
  - ./testdata/package
  - /abs/local-storage
cache_time.index: 1s
cache_time.search: 1h30m
cache_time.categories: 500ms
cache_time.catch_all: 2
unknown.key: whatever
"""
    values = parse_config_text(text, path="c.yml")
    assert values == {
        "package_paths": ("./testdata/package", "/abs/local-storage"),
        "cache_time_index": timedelta(seconds=1),
        "cache_time_search": timedelta(hours=1, minutes=30),
        "cache_time_categories": timedelta(milliseconds=500),
        "cache_time_catch_all": timedelta(seconds=2),
    }


def test_nested_cache_time_is_ignored() -> None:
    values = parse_config_text("cache_time:\n  index: 1s\n", path="c.yml")
    assert values == {}


def test_empty_config() -> None:
    assert parse_config_text("", path="c.yml") == {}


def test_single_path_string() -> None:
    assert parse_config_text("package_paths: ./p\n", path="c.yml") == {"package_paths": ("./p",)}


@pytest.mark.parametrize("value", ["0s", "0", "-1s"])
def test_cache_time_must_be_positive(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(f"cache_time.search: {value}\n", path="c.yml")
    assert info.value.message == "cache time must be greater than 0s"


def test_bad_duration_in_config() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("cache_time.index: 10x\n", path="c.yml")
    assert info.value.message == (
        "unpacking config failed (path: c.yml): "
        'time: unknown unit "x" in duration "10x" accessing \'cache_time.index\''
    )


def test_config_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"reading config failed \(path: c.yml\)"):
        parse_config_text("- a\n- b\n", path="c.yml")


def test_config_bad_yaml() -> None:
    with pytest.raises(ConfigError, match=r"reading config failed \(path: c.yml\)"):
        parse_config_text("a: [\n", path="c.yml")


def test_missing_config_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yml")
    with pytest.raises(ConfigError) as info:
        load_config_file(Settings(config_path=missing))
    assert info.value.message == f"Configuration file is not available: {missing}"


def test_load_config_file_keeps_relative_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("package_paths: [./packages]\ncache_time.index: 1s\n")
    s = load_config_file(Settings(config_path=str(cfg), address="127.0.0.1:1"))
    assert s.package_paths == ("./packages",)
    assert s.cache_time_index == timedelta(seconds=1)
    assert s.cache_time_search == timedelta(minutes=10)
    assert s.address == "127.0.0.1:1"


def test_describe() -> None:
    lines = describe(Settings(package_paths=("a", "b")))
    assert lines[0] == "Packages paths: a, b"
    assert "Cache time for /search: 10m0s" in lines
    assert "Cache time for /: 10s" in lines
