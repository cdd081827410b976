"""Settings of the EPR-compatible server: config file, command-line flags and environment.

The reference registry reads a YAML file with literal flat dotted keys (``cache_time.index``) and
takes every flag also from an ``EPR_*`` environment variable (spec §9). Precedence: command line >
environment > default. This module is pure except :func:`load_config_file`, which reads the file.

Values are parsed with the semantics of the reference's Go standard library (``strconv.ParseBool``,
``time.ParseDuration``, ``strconv.ParseInt`` with base 0) so that a configuration that works with
the reference works here, and one that fails there fails here with the same text.

The environment prefix ``PACKAGE_STORAGE_`` is reserved for settings of our own (for example
``PACKAGE_STORAGE_SERVER=granian``); ``EPR_`` variables only ever map to reference flags.
"""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import Enum
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from package_storage.errors import ConfigError

EPR_ENV_PREFIX = "EPR_"
OWN_ENV_PREFIX = "PACKAGE_STORAGE_"
"""Reserved for settings that the reference does not have."""

LOG_LEVELS = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")
LOG_TYPES = ("ecs", "dev")
TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
SERVERS = ("uvicorn", "granian")

ServerKind = Literal["uvicorn", "granian"]


class FlagOrigin(Enum):
    """Where a flag value came from (decides the error text and the exit status)."""

    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"


class FlagValueError(ConfigError):
    """A flag value that does not parse.

    From the environment the text is ``failed to set -<flag>: <error>`` (fatal at startup, exit
    1); from the command line it is the Go ``flag`` package's usage error (exit 2). Several bad
    environment variables are reported together, one line each.
    """

    def __init__(self, message: str, *, flags: tuple[str, ...], origin: FlagOrigin) -> None:
        super().__init__(message)
        self.flags = flags
        self.origin = origin

    @classmethod
    def for_value(cls, flag: Flag, value: str, error: str, origin: FlagOrigin) -> FlagValueError:
        if origin is FlagOrigin.ENVIRONMENT:
            message = f"failed to set -{flag.name}: {error}"
        elif flag.is_bool:
            message = f'invalid boolean value "{value}" for -{flag.name}: {error}'
        else:
            message = f'invalid value "{value}" for flag -{flag.name}: {error}'
        return cls(message, flags=(flag.name,), origin=origin)


# --- Go value syntax ---------------------------------------------------------------------------

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(text: str) -> bool:
    """``strconv.ParseBool``: 1 t T TRUE true True / 0 f F FALSE false False."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


_INT_RE = re.compile(
    r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)"
)


def parse_go_int(text: str) -> int:
    """``strconv.ParseInt(s, 0, 64)``: decimal, ``0x``, ``0o``, ``0b``, leading-zero octal, ``_``."""
    if not _INT_RE.fullmatch(text):
        raise ConfigError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").replace("_", "")
    if len(body) > 1 and body[0] == "0" and body[1] in "0123456789":
        value = int(body, 8)
    else:
        value = int(body, 0)
    value *= sign
    if not -(2**63) <= value < 2**63:
        raise ConfigError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


_UNITS_NS: Mapping[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_NS = 2**63 - 1


def parse_go_duration_ns(text: str) -> int:
    """``time.ParseDuration`` in nanoseconds, with its error texts.

    A duration is a possibly signed sequence of decimal numbers, each with optional fraction
    and a unit suffix (``ns``, ``us``/``µs``, ``ms``, ``s``, ``m``, ``h``), e.g. ``1h30m``,
    ``500ms``, ``-1.5h``. ``0`` alone is allowed.
    """
    orig = text
    invalid = ConfigError(f'time: invalid duration "{orig}"')
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        # integer part
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        int_part, s = s[:i], s[i:]
        frac_part = ""
        if s.startswith("."):
            s = s[1:]
            j = 0
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                j += 1
            frac_part, s = s[:j], s[j:]
        if not int_part and not frac_part:
            raise invalid  # no digits (e.g. ".s")
        k = 0
        while k < len(s) and s[k] != "." and not (s[k].isascii() and s[k].isdigit()):
            k += 1
        unit, s = s[:k], s[k:]
        if not unit:
            raise ConfigError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS_NS:
            raise ConfigError(f'time: unknown unit "{unit}" in duration "{orig}"')
        scale = _UNITS_NS[unit]
        value = int(int_part or "0") * scale
        if frac_part:
            value += int(frac_part) * scale // (10 ** len(frac_part))
        total += value
        if total > (_MAX_NS + 1 if neg else _MAX_NS):
            raise invalid
    return -total if neg else total


def parse_go_duration(text: str) -> timedelta:
    """``time.ParseDuration`` as a ``timedelta`` (microsecond precision)."""
    return timedelta(microseconds=parse_go_duration_ns(text) // 1000)


def format_go_duration(value: timedelta) -> str:
    """``time.Duration.String()``: ``10s``, ``10m0s``, ``1h30m0s``, ``500ms``, ``0s``."""
    ns = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= scale:
                return sign + _frac(ns, scale) + unit
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    out = _frac(rest, 1_000_000_000) + "s"
    if hours or minutes:
        out = f"{minutes}m" + out
    if hours:
        out = f"{hours}h" + out
    return sign + out


def _frac(value: int, scale: int) -> str:
    whole, rest = divmod(value, scale)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


# --- flags -------------------------------------------------------------------------------------

FlagKind = Literal["str", "bool", "int", "level", "logtype", "tls", "server", "duration"]


@dataclass(frozen=True, slots=True)
class Flag:
    """One reference flag (or one of ours): its name, Settings attribute and value kind."""

    name: str
    attr: str
    kind: FlagKind
    help: str
    env_prefix: str = EPR_ENV_PREFIX

    @property
    def env(self) -> str:
        return self.env_prefix + self.name.upper().replace("-", "_")

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"


FLAGS: tuple[Flag, ...] = (
    Flag("address", "address", "str", "Address of the package-registry service."),
    Flag("config", "config_path", "str", "Path to the configuration file."),
    Flag("dry-run", "dry_run", "bool", "Load and validate all packages, then exit."),
    Flag("version", "print_version", "bool", "Print Elastic Package Registry version."),
    Flag("log-level", "log_level", "level", "Log level (debug, info, warn, error, ...)."),
    Flag("log-type", "log_type", "logtype", "Log type (ecs, dev)."),
    Flag("tls-cert", "tls_cert", "str", "Path of the TLS certificate."),
    Flag("tls-key", "tls_key", "str", "Path of the TLS key."),
    Flag("tls-min-version", "tls_min_version", "tls", "Minimum version TLS supported."),
    Flag("metrics-address", "metrics_address", "str", "Address to expose the Prometheus metrics."),
    Flag("httpprof", "httpprof", "str", "Profiler listener (accepted, not supported)."),
    Flag(
        "disable-package-validation",
        "disable_package_validation",
        "bool",
        "Disable package content validation.",
    ),
    Flag(
        "require-package-signatures",
        "require_package_signatures",
        "bool",
        "Require a .sig file for every local package.",
    ),
    Flag(
        "allow-unknown-query-parameters",
        "allow_unknown_query_parameters",
        "bool",
        "Accept unknown query parameters (false: 400).",
    ),
    Flag(
        "package-paths-enable-watcher",
        "package_paths_enable_watcher",
        "bool",
        "Watch the package paths and reload on changes.",
    ),
    Flag(
        "package-paths-workers",
        "package_paths_workers",
        "int",
        "Parallel package loaders (default: CPU count).",
    ),
    Flag(
        "server",
        "server",
        "server",
        "HTTP server implementation (uvicorn, granian).",
        env_prefix=OWN_ENV_PREFIX,
    ),
    Flag(
        "feature-proxy-mode",
        "feature_proxy_mode",
        "bool",
        "Proxy mode: packages not found locally come from -proxy-to.",
    ),
    Flag("proxy-to", "proxy_to", "str", "Upstream registry of the proxy mode."),
    Flag(
        "proxy-allow-insecure",
        "proxy_allow_insecure",
        "bool",
        "Allow an http:// (not HTTPS) -proxy-to.",
    ),
    Flag(
        "proxy-timeout",
        "proxy_timeout",
        "duration",
        "Proxy mode: time limit of one upstream attempt (default 10s).",
        env_prefix=OWN_ENV_PREFIX,
    ),
    Flag(
        "proxy-retries",
        "proxy_retries",
        "int",
        "Proxy mode: retries of a failed upstream request (default 4).",
        env_prefix=OWN_ENV_PREFIX,
    ),
    Flag(
        "proxy-strict",
        "proxy_strict",
        "bool",
        "Proxy mode: an unavailable upstream fails /search and /categories with 500"
        " (default: answer from the local packages).",
        env_prefix=OWN_ENV_PREFIX,
    ),
)
FLAGS_BY_NAME: Mapping[str, Flag] = {f.name: f for f in FLAGS}

DEFAULT_CACHE_DIR = ".package-storage-cache"
"""The cache folder beside the config file when ``-cache-dir`` is not given."""


DEFAULT_PROXY_TO = "https://epr.elastic.co/"


def _default_workers() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the serve command needs, after flags, environment and config file."""

    # flags (spec §9.2)
    address: str = "localhost:8080"
    config_path: str = "config.yml"
    dry_run: bool = False
    print_version: bool = False
    log_level: str = "info"
    log_type: str = "ecs"
    tls_cert: str = ""
    tls_key: str = ""
    tls_min_version: str = ""
    metrics_address: str = ""
    httpprof: str = ""
    disable_package_validation: bool = False
    require_package_signatures: bool = True
    allow_unknown_query_parameters: bool = True
    package_paths_enable_watcher: bool = False
    package_paths_workers: int = field(default_factory=_default_workers)
    server: ServerKind = "uvicorn"
    feature_proxy_mode: bool = False
    proxy_to: str = DEFAULT_PROXY_TO
    proxy_allow_insecure: bool = False
    proxy_timeout: float = 10.0  # seconds (a float: Settings travel as JSON to Granian workers)
    proxy_retries: int = 4
    proxy_strict: bool = False
    # serve's --cache-dir (a click option of the command, shared with store mode's blob
    # cache): "" = beside the config file, "off" = no package cache.
    cache_dir: str = ""
    # config file (spec §9.1)
    package_paths: tuple[str, ...] = ()
    cache_time_index: timedelta = timedelta(seconds=10)
    cache_time_search: timedelta = timedelta(minutes=10)
    cache_time_categories: timedelta = timedelta(minutes=10)
    cache_time_catch_all: timedelta = timedelta(minutes=10)

    @property
    def package_cache_dir(self) -> str | None:
        """Where read packages are cached by content (``--cache-dir``), None when off."""
        if self.cache_dir == "off":
            return None
        if self.cache_dir:
            return os.path.join(self.cache_dir, "packages")
        folder = os.path.dirname(os.path.abspath(self.config_path))
        return os.path.join(folder, DEFAULT_CACHE_DIR, "packages")

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    @property
    def tls_minimum(self) -> ssl.TLSVersion | None:
        return TLS_VERSIONS.get(self.tls_min_version)


def _parse_flag_value(flag: Flag, text: str, origin: FlagOrigin) -> Any:
    kind = flag.kind
    try:
        if kind == "str":
            return text
        if kind == "bool":
            try:
                return parse_go_bool(text)
            except ConfigError:
                raise ConfigError("parse error") from None
        if kind == "int":
            try:
                return parse_go_int(text)
            except ConfigError as exc:
                raise ConfigError(
                    "value out of range" if "out of range" in exc.message else "parse error"
                ) from None
        if kind == "level":
            return parse_log_level(text)
        if kind == "logtype":
            return text  # checked when the logger is set up (reference: logger initialisation)
        if kind == "tls":
            if text not in TLS_VERSIONS:
                raise ConfigError(f"unsupported TLS version: {text}")
            return text
        if kind == "duration":
            return parse_go_duration_ns(text) / 1e9
        if kind == "server":
            if text not in SERVERS:
                raise ConfigError(
                    f"unsupported server: {text} (choose one of {', '.join(SERVERS)})"
                )
            return text
    except ConfigError as exc:
        raise FlagValueError.for_value(flag, text, exc.message, origin) from None
    raise AssertionError(kind)  # pragma: no cover


def parse_log_level(text: str) -> str:
    """zap ``Level.UnmarshalText``: lower or upper case names; empty means ``info``."""
    if text == "":
        return "info"
    lowered = text.lower()
    if lowered in LOG_LEVELS and text in (lowered, lowered.upper()):
        return lowered
    raise ConfigError(f'unrecognized level: "{text}"')


def settings_from_flags(
    command_line: Mapping[str, str | None],
    environ: Mapping[str, str],
) -> Settings:
    """Settings from flag values: command line > environment > default.

    ``command_line`` maps flag names (``dry-run``) to the raw text given on the command line
    (None or absent = not given). Environment values that do not parse are all reported at
    once (one line each) in one :class:`FlagValueError`; like the reference, a variable that
    is set but empty still counts (an empty boolean fails). Unknown names raise ``ConfigError``.
    """
    for name in command_line:
        if name not in FLAGS_BY_NAME:
            raise ConfigError(f"flag provided but not defined: -{name}")
    values: dict[str, Any] = {}
    env_errors: list[FlagValueError] = []
    for flag in FLAGS:
        if flag.env in environ:
            try:
                values[flag.attr] = _parse_flag_value(
                    flag, environ[flag.env], FlagOrigin.ENVIRONMENT
                )
            except FlagValueError as exc:
                env_errors.append(exc)
    if env_errors:
        raise FlagValueError(
            "\n".join(e.message for e in env_errors),
            flags=tuple(name for e in env_errors for name in e.flags),
            origin=FlagOrigin.ENVIRONMENT,
        )
    for name, text in command_line.items():
        if text is None:
            continue
        flag = FLAGS_BY_NAME[name]
        values[flag.attr] = _parse_flag_value(flag, text, FlagOrigin.COMMAND_LINE)
    return Settings(**values)


def check_flags(settings: Settings) -> None:
    """Startup checks of flag combinations that the reference makes before reading the config."""
    if settings.tls_min_version and not settings.tls_enabled:
        raise ConfigError(
            "-tls-min-version set but missing TLS cert and key files (-tls-cert and -tls-key)"
        )
    if settings.package_paths_workers <= 0:
        raise ConfigError("package-paths-workers must be greater than 0")
    if settings.feature_proxy_mode:
        check_proxy_to(settings.proxy_to, allow_insecure=settings.proxy_allow_insecure)
        if settings.proxy_timeout <= 0:
            raise ConfigError("-proxy-timeout must be greater than 0s")
        if settings.proxy_retries < 0:
            raise ConfigError("-proxy-retries must not be negative")
    if settings.log_type not in LOG_TYPES:
        raise ConfigError(
            f'Failed to initialize logging: invalid logger type "{settings.log_type}"'
        )


def check_proxy_to(url: str, *, allow_insecure: bool) -> None:
    """The upstream of the proxy mode: HTTPS unless ``allow_insecure`` (reference texts), and
    (ours) an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:
        raise ConfigError(f'invalid -proxy-to URL: parse "{url}": {exc}') from None
    if not allow_insecure and parts.scheme != "https":
        raise ConfigError(
            f"-proxy-to must use HTTPS (got {go_quote_string(url)}); "
            "use -proxy-allow-insecure to allow HTTP"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f'invalid -proxy-to URL: parse "{url}": need an absolute http:// or https:// URL'
            " with a host"
        )


def go_quote_string(text: str) -> str:
    """Go ``%q`` of a string (enough for URLs: backslash and double quote escaped, other
    non-printable characters as JSON escapes)."""
    return json.dumps(text, ensure_ascii=False)


# --- config file -------------------------------------------------------------------------------

_CACHE_KEYS: Mapping[str, str] = {
    "cache_time.index": "cache_time_index",
    "cache_time.search": "cache_time_search",
    "cache_time.categories": "cache_time_categories",
    "cache_time.catch_all": "cache_time_catch_all",
}


RELATIVE_TO_CONFIG_KEY = "package_paths_relative_to_config"
"""Our own config key (the reference ignores it): when ``true``, relative ``package_paths``
resolve against the config file's folder instead of the working directory. Bundles written by
``package-storage export`` set it so ``serve --config OUT/config.yml`` works from anywhere."""


def parse_config_text(
    text: str | bytes, *, path: str, base_dir: str | None = None
) -> dict[str, Any]:
    """Parse an EPR ``config.yml``; returns Settings field values (only keys that are set).

    Keys are literal flat keys; the nested form (``cache_time: {index: ..}``) and unknown keys are
    ignored. Durations use Go syntax; a bare number means seconds (go-ucfg). Every cache time must
    be greater than zero. With ``package_paths_relative_to_config: true`` and ``base_dir`` (the
    config file's folder), relative package paths are joined to ``base_dir``; without that key
    they stay as written (relative to the working directory, like the reference).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"reading config failed (path: {path}): {detail}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"reading config failed (path: {path}): the file must hold a mapping of keys to values"
        )
    out: dict[str, Any] = {}

    def fail(key: str, detail: str) -> ConfigError:
        return ConfigError(f"unpacking config failed (path: {path}): {detail} accessing '{key}'")

    if "package_paths" in data:
        raw = data["package_paths"]
        if raw is None:
            items: list[Any] = []
        elif isinstance(raw, list):
            items = raw
        else:
            items = [raw]
        paths: list[str] = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise fail("package_paths", "type mismatch, expected a list of paths")
            paths.append(str(item))
        relative_to_config = data.get(RELATIVE_TO_CONFIG_KEY, False)
        if not isinstance(relative_to_config, bool):
            raise fail(RELATIVE_TO_CONFIG_KEY, "type mismatch, expected a boolean")
        if relative_to_config and base_dir is not None:
            paths = [os.path.normpath(os.path.join(base_dir, p)) for p in paths]
        out["package_paths"] = tuple(paths)
    for key, attr in _CACHE_KEYS.items():
        if key not in data:
            continue
        raw = data[key]
        if isinstance(raw, bool) or raw is None:
            raise fail(key, "type mismatch, expected a duration")
        if isinstance(raw, int | float):
            out[attr] = timedelta(seconds=raw)
        elif isinstance(raw, str):
            try:
                out[attr] = parse_go_duration(raw)
            except ConfigError as exc:
                raise fail(key, exc.message) from None
        else:
            raise fail(key, "type mismatch, expected a duration")
    for key, attr in _CACHE_KEYS.items():
        if key in data and out[attr] <= timedelta(0):
            raise ConfigError("cache time must be greater than 0s")
    return out


def load_config_file(settings: Settings) -> Settings:
    """Read ``settings.config_path`` (relative paths: from the working directory) into Settings.

    ``package_paths`` stay as written (relative ones resolve against the working directory when
    the sources are scanned, like the reference), unless the file sets
    ``package_paths_relative_to_config: true`` (see :data:`RELATIVE_TO_CONFIG_KEY`).
    """
    path = settings.config_path
    try:
        with open(path, "rb") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"Configuration file is not available: {path}") from None
    except OSError as exc:
        raise ConfigError(f"reading config failed (path: {path}): {exc.strerror}") from None
    base_dir = os.path.dirname(os.path.abspath(path))
    return replace(settings, **parse_config_text(text, path=path, base_dir=base_dir))


def check_settings(settings: Settings) -> None:
    """Checks that need the config file (after :func:`load_config_file`)."""
    if settings.package_paths_enable_watcher and not settings.package_paths:
        raise ConfigError("no package paths configured, cannot enable watcher")


def describe(settings: Settings) -> list[str]:
    """The reference's startup log lines about the configuration."""
    return [
        "Packages paths: " + ", ".join(settings.package_paths),
        "Cache time for /: " + format_go_duration(settings.cache_time_index),
        "Cache time for /index.json: " + format_go_duration(settings.cache_time_index),
        "Cache time for /search: " + format_go_duration(settings.cache_time_search),
        "Cache time for /categories: " + format_go_duration(settings.cache_time_categories),
        "Cache time for all others: " + format_go_duration(settings.cache_time_catch_all),
    ]
