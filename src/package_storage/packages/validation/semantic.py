"""The package-spec's semantic rules: checks across files that no schema can express.

Each rule is a function ``(Context) -> Iterator[Problem]`` registered in :data:`RULES` with the
format_versions and package types it applies to (as the spec applies them). Rules read parsed
documents through ``Context.raw`` (cached), never raise, and name the file each problem is about.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from typing import Any

from package_storage.errors import VersionError
from package_storage.packages.categories import CATEGORIES
from package_storage.packages.validation import fields, kibana, releases, templates
from package_storage.packages.validation.context import Context
from package_storage.packages.validation.core import MANIFEST, Problem
from package_storage.packages.versions import Constraint, Version

V = Version.parse_strict


def _maps(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --- built packages -------------------------------------------------------------------------


def rule_built_sources(ctx: Context) -> Iterator[Problem]:
    """``package:`` references are source-only: a built package carries the resolved input."""
    if not ctx.built or ctx.package_type != "integration":
        return
    for t in _maps(ctx.manifest.get("policy_templates")):
        for i, item in enumerate(_maps(t.get("inputs"))):
            if "package" in item:
                yield Problem(
                    MANIFEST,
                    "built-source-only",
                    f"policy template {_s(t.get('name'))!r}: input[{i}] has 'package:' which is "
                    f"source-only",
                )
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        for i, s in enumerate(_maps(doc.get("streams") if isinstance(doc, dict) else None)):
            if "package" in s:
                yield Problem(
                    ds.manifest_path,
                    "built-source-only",
                    f"stream[{i}] has 'package:' which is source-only",
                )


# --- kibana ---------------------------------------------------------------------------------


def rule_kibana_ids(ctx: Context) -> Iterator[Problem]:
    for f in ctx.pkg.files:
        parts = f.split("/")
        if len(parts) != 3 or parts[0] != "kibana" or not f.endswith(".json"):
            continue
        obj = ctx.json(f)
        if not isinstance(obj, dict):
            continue
        object_id = obj.get("id")
        if parts[1] == "security_rule":
            attributes = obj.get("attributes")
            rule_id = attributes.get("rule_id") if isinstance(attributes, dict) else None
            if (
                isinstance(object_id, str)
                and isinstance(rule_id, str)
                and not object_id.startswith(rule_id)
            ):
                yield Problem(
                    f,
                    "kibana-id-mismatch",
                    f"kibana object ID [{object_id}] should start with rule ID [{rule_id}]",
                )
                continue
        if object_id != parts[2][: -len(".json")]:
            yield Problem(
                f, "kibana-id-mismatch", f"kibana object file [{f}] defines non-matching ID"
            )


def rule_kibana_tags(ctx: Context) -> Iterator[Problem]:
    names: dict[str, str] = {}
    tags = ctx.doc("kibana/tags.yml")
    for item in _maps(tags):
        text = _s(item.get("text"))
        if not text:
            continue
        if text in names:
            yield Problem(
                "kibana/tags.yml",
                "kibana-tag-duplicate",
                f"duplicate tag name {text!r} found (SVR00007)",
            )
        names[text] = "kibana/tags.yml"
    for f in ctx.pkg.files:
        if not (f.startswith("kibana/tag/") and f.endswith(".json")):
            continue
        obj = ctx.json(f)
        attributes = obj.get("attributes") if isinstance(obj, dict) else None
        name = _s(attributes.get("name")) if isinstance(attributes, dict) else ""
        if name and name in names:
            yield Problem(
                f,
                "kibana-tag-duplicate",
                f"tag name {name!r} is already defined in {names[name]} (SVR00007)",
            )


def _condition(ctx: Context, group: str, key: str) -> Any:
    """``conditions.<group>.<key>`` of the manifest, written nested or as a dotted key."""
    conditions = ctx.manifest.get("conditions")
    if not isinstance(conditions, dict):
        return None
    if f"{group}.{key}" in conditions:
        return conditions[f"{group}.{key}"]
    inner = conditions.get(group)
    return inner.get(key) if isinstance(inner, dict) else None


def rule_security_capability(ctx: Context) -> Iterator[Problem]:
    if not any(
        f.startswith("kibana/security_rule/") and f.endswith(".json") and f.count("/") == 2
        for f in ctx.pkg.files
    ):
        return
    caps = _condition(ctx, "elastic", "capabilities")
    if isinstance(caps, list) and "security" in caps:
        return
    yield Problem(
        MANIFEST,
        "capability-missing",
        "found security rule assets in package but security capability is missing",
    )


# --- manifests: cross-file ------------------------------------------------------------------


def rule_ilm_policy(ctx: Context) -> Iterator[Problem]:
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        if not isinstance(doc, dict):
            continue
        policy = _s(doc.get("ilm_policy"))
        if not policy:
            continue
        prefix = f"{_s(doc.get('type')) or 'logs'}-{ctx.pkg.name}.{ds.name}-"
        if not policy.startswith(prefix):
            yield Problem(
                ds.manifest_path,
                "ilm-policy-name",
                f'field ilm_policy must start with "{prefix}", found "{policy}"',
            )
            continue
        target = f"{ds.dir}/elasticsearch/ilm/{policy[len(prefix) :]}.json"
        if not ctx.pkg.is_file(target):
            yield Problem(
                ds.manifest_path,
                "ilm-policy-missing",
                f'field ilm_policy: ILM policy "{policy}" not found in package, expected '
                f'definition in "{target}"',
            )


def _find(ctx: Context, folder: str, name: str) -> bool:
    """A file ``name`` in ``folder`` (or a file ending in ``name`` there, as Fleet resolves)."""
    path = posixpath.normpath(f"{folder}/{name}")
    if ctx.pkg.is_file(path):
        return True
    prefix = f"{folder}/"
    return any(
        f.startswith(prefix) and "/" not in f[len(prefix) :] and f.endswith(name)
        for f in ctx.pkg.files
    )


def rule_template_paths(ctx: Context) -> Iterator[Problem]:
    m = ctx.manifest
    if ctx.package_type == "input":
        for t in _maps(m.get("policy_templates")):
            paths = _list(t.get("template_paths"))
            if _s(t.get("template_path")):
                paths = [*paths, t["template_path"]]
            if not paths:
                yield Problem(
                    MANIFEST,
                    "template-path-missing",
                    f'policy template "{_s(t.get("name"))}" references template_path "": '
                    f"template_path or template_paths is required",
                )
            for p in paths:
                if isinstance(p, str) and not _find(ctx, "agent/input", p):
                    yield Problem(
                        MANIFEST,
                        "template-path-missing",
                        f'policy template "{_s(t.get("name"))}" references template_path '
                        f'"{p}": template file not found',
                    )
        return
    if ctx.package_type != "integration":
        return
    for t in _maps(m.get("policy_templates")):
        for item in _maps(t.get("inputs")):
            paths = _list(item.get("template_paths"))
            if not paths and _s(item.get("template_path")):
                paths = [item["template_path"]]
            for p in paths:
                if isinstance(p, str) and not _find(ctx, "agent/input", p):
                    yield Problem(
                        MANIFEST,
                        "template-path-missing",
                        f'policy template "{_s(t.get("name"))}": input '
                        f'"{_s(item.get("type"))}" template_path "{p}": template file not found',
                    )
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        for s in _maps(doc.get("streams") if isinstance(doc, dict) else None):
            tps = s.get("template_paths") if isinstance(s.get("template_paths"), list) else []
            if _s(s.get("package")) and not tps and not _s(s.get("template_path")):
                continue
            paths = tps or [_s(s.get("template_path")) or "stream.yml.hbs"]
            for p in paths:
                if isinstance(p, str) and not _find(ctx, f"{ds.dir}/agent/stream", p):
                    yield Problem(
                        ds.manifest_path,
                        "template-path-missing",
                        f'data stream "{ds.dir}" stream input "{_s(s.get("input"))}": '
                        f"template file not found",
                    )
                    break


def rule_requires(ctx: Context) -> Iterator[Problem]:
    m = ctx.manifest
    requires = _map(m.get("requires"))
    listed = {
        _s(d.get("package")) for kind in ("input", "content") for d in _maps(requires.get(kind))
    }
    for i, t in enumerate(_maps(m.get("policy_templates"))):
        for j, item in enumerate(_maps(t.get("inputs"))):
            ref = _s(item.get("package"))
            if ref and ref not in listed:
                yield Problem(
                    MANIFEST,
                    "requires-missing",
                    f'policy_templates[{i}].inputs[{j}] references package "{ref}" which is not '
                    f"listed in requires section",
                )
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        for k, s in enumerate(_maps(doc.get("streams") if isinstance(doc, dict) else None)):
            ref = _s(s.get("package"))
            if ref and ref not in listed:
                yield Problem(
                    ds.manifest_path,
                    "requires-missing",
                    f'streams[{k}] references package "{ref}" which is not listed in requires '
                    f"section",
                )


def rule_categories(ctx: Context) -> Iterator[Problem]:
    m = ctx.manifest
    for t in _maps(m.get("policy_templates")):
        wanted = [c for c in t.get("categories") or [] if isinstance(c, str)]
        streams = [s for s in t.get("data_streams") or [] if isinstance(s, str)]
        if not wanted:
            continue
        for ds_name in streams:
            path = f"data_stream/{ds_name}/manifest.yml"
            doc = ctx.doc(path)
            if not isinstance(doc, dict):
                continue
            have = [c for c in _list(doc.get("categories")) if isinstance(c, str)]
            if not have:
                continue
            missing = [c for c in wanted if c not in have]
            if missing:
                yield Problem(
                    MANIFEST,
                    "categories-mismatch",
                    f'data stream "{ds_name}" manifest categories [{" ".join(have)}] are missing '
                    f'policy template "{_s(t.get("name"))}" categories [{" ".join(missing)}] '
                    f'(defined in "{path}")',
                )


def rule_package_categories(ctx: Context) -> Iterator[Problem]:
    """The package's categories include the (parent) category of each data stream category.

    A category our table does not know is not refused (the spec asks the live registry; ours may
    be older)."""
    package = [c for c in _list(ctx.manifest.get("categories")) if isinstance(c, str)]
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        cats = [
            c
            for c in _list(doc.get("categories") if isinstance(doc, dict) else None)
            if isinstance(c, str)
        ]
        missing: list[str] = []
        for cat in cats:
            known = CATEGORIES.get(cat)
            if known is None:
                continue
            parent = known.parent_id or cat
            if parent not in package and parent not in missing:
                missing.append(parent)
        if missing:
            yield Problem(
                MANIFEST,
                "categories-mismatch",
                f"package manifest categories [{' '.join(package)}] are missing parent categories "
                f'[{" ".join(sorted(missing))}] from data stream "{ds.name}" (defined in '
                f'"{ds.manifest_path}")',
            )


def rule_deployment_modes(ctx: Context) -> Iterator[Problem]:
    templates = _maps(ctx.manifest.get("policy_templates"))
    if len(templates) == 1:
        modes = _map(templates[0].get("deployment_modes"))
        default = _map(modes.get("default"))
        if default.get("enabled") is False and _s(_map(modes.get("agentless")).get("release")):
            yield Problem(
                MANIFEST,
                "agentless-release",
                f'policy template "{_s(templates[0].get("name"))}" sets agentless.release but '
                f"agentless is the only deployment mode; use the package version to indicate "
                f"maturity instead",
            )
    for t in templates:
        name = _s(t.get("name"))
        modes = _map(t.get("deployment_modes"))
        enabled = []
        if _map(modes.get("default")).get("enabled") is not False:
            enabled.append("default")
        if _map(modes.get("agentless")).get("enabled") is True:
            enabled.append("agentless")
        inputs = _maps(t.get("inputs"))
        for mode in enabled:
            if not any(
                not isinstance(i.get("deployment_modes"), list) or mode in i["deployment_modes"]
                for i in inputs
            ):
                yield Problem(
                    MANIFEST,
                    "deployment-mode-without-input",
                    f'policy template "{name}" enables deployment mode "{mode}" but no input '
                    f"supports this mode",
                )
        for item in inputs:
            item_modes = item.get("deployment_modes")
            for mode in item_modes if isinstance(item_modes, list) else []:
                if mode not in enabled:
                    yield Problem(
                        MANIFEST,
                        "deployment-mode-unsupported",
                        f'input "{_s(item.get("type"))}" in policy template "{name}" specifies '
                        f'unsupported deployment mode "{mode}"',
                    )


def rule_inputs_deprecated(ctx: Context) -> Iterator[Problem]:
    m = ctx.manifest
    if "deprecated" in m:
        return
    inputs = [i for t in _maps(m.get("policy_templates")) for i in _maps(t.get("inputs"))]
    if inputs and all("deprecated" in i for i in inputs):
        yield Problem(
            MANIFEST,
            "inputs-all-deprecated",
            "all inputs are deprecated but the integration package is not marked as deprecated",
        )


def rule_input_qualifier(ctx: Context) -> Iterator[Problem]:
    for t in _maps(ctx.manifest.get("policy_templates")):
        inputs = _maps(t.get("inputs"))
        counts: dict[str, int] = {}
        for item in inputs:
            counts[_s(item.get("type"))] = counts.get(_s(item.get("type")), 0) + 1
        reported: set[str] = set()
        for item in inputs:
            kind = _s(item.get("type"))
            if counts[kind] > 1 and not _s(item.get("name")) and kind not in reported:
                reported.add(kind)
                yield Problem(
                    MANIFEST,
                    "input-name-required",
                    f'policy template "{_s(t.get("name"))}": input with type "{kind}" must have '
                    f"a name when multiple inputs of the same type are present (SVR00010)",
                )


def _var_groups(
    path: str, where: str, groups: Any, variables: list[dict[str, Any]]
) -> Iterator[Problem]:
    defined = {_s(v.get("name")): v for v in variables}
    seen_groups: set[str] = set()
    for group in _maps(groups):
        gname = _s(group.get("name"))
        if gname in seen_groups:
            yield Problem(path, "var-group-duplicate", f'{where}duplicate var_group name "{gname}"')
        seen_groups.add(gname)
        seen: set[str] = set()
        for option in _maps(group.get("options")):
            oname = _s(option.get("name"))
            if oname in seen:
                yield Problem(
                    path,
                    "var-group-duplicate-option",
                    f'{where}duplicate option name "{oname}" in var_group "{gname}"',
                )
            seen.add(oname)
            for var in _list(option.get("vars")):
                if not isinstance(var, str):
                    continue
                if var not in defined:
                    yield Problem(
                        path,
                        "var-group-unknown-var",
                        f'{where}var "{var}" referenced in var_group "{gname}" option "{oname}" '
                        f"is not defined",
                    )
                elif defined[var].get("required") is True:
                    kind = "required" if group.get("required") is True else "non-required"
                    why = (
                        "requirement is inferred from var_group"
                        if kind == "required"
                        else "var_group is optional"
                    )
                    yield Problem(
                        path,
                        "var-group-required-var",
                        f'{where}var "{var}" in {kind} var_group "{gname}" should not have '
                        f"required: true ({why})",
                    )


def rule_var_groups(ctx: Context) -> Iterator[Problem]:
    """The package's var groups (against every variable of the manifest) and each stream's
    (against the package's and the stream's variables)."""
    m = ctx.manifest
    root_vars = _maps(m.get("vars"))
    every = list(root_vars)
    for t in _maps(m.get("policy_templates")):
        every += _maps(t.get("vars"))
        for item in _maps(t.get("inputs")):
            every += _maps(item.get("vars"))
    yield from _var_groups(MANIFEST, "", m.get("var_groups"), every)
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        for i, stream in enumerate(_maps(doc.get("streams") if isinstance(doc, dict) else None)):
            if not _list(stream.get("var_groups")):
                continue
            label = _s(stream.get("title")) or _s(stream.get("input")) or f"stream[{i}]"
            yield from _var_groups(
                ds.manifest_path,
                f"stream {label}: ",
                stream.get("var_groups"),
                root_vars + _maps(stream.get("vars")),
            )


def rule_agent_version(ctx: Context) -> Iterator[Problem]:
    conditions = ctx.manifest.get("conditions")
    agent = conditions.get("agent") if isinstance(conditions, dict) else None
    text = agent.get("version") if isinstance(agent, dict) else None
    if isinstance(text, str):
        try:
            Constraint.parse(text)
        except VersionError as exc:
            yield Problem(
                MANIFEST, "agent-version-invalid", f"invalid agent.version condition: {exc.message}"
            )


VERSION_IN_CONSTRAINT = re.compile(r"(\d+\.\d+\.\d+)")


def _kibana_at_least(ctx: Context, minimum: str) -> bool:
    """True when every version named in ``conditions.kibana.version`` is at least ``minimum``
    (the package-spec's test: an unset condition is not)."""
    text = _condition(ctx, "kibana", "version")
    if not isinstance(text, str) or not text:
        return False
    if text == f"^{minimum}":
        return True
    floor = V(minimum)
    for match in VERSION_IN_CONSTRAINT.findall(text):
        try:
            if V(match) < floor:
                return False
        except VersionError:
            return False
    return True


def rule_minimum_kibana(ctx: Context) -> Iterator[Problem]:
    """Input packages from 1.0.0 need Kibana 8.8.0; runtime fields and kibana/tags.yml need
    8.10.0 (the last is a warning, code SVR00005, before format_version 3.0.0)."""
    where = MANIFEST
    if ctx.package_type == "input":
        try:
            version = V(_s(ctx.manifest.get("version")))
        except VersionError:
            version = None
        if version is not None and version >= V("1.0.0") and not _kibana_at_least(ctx, "8.8.0"):
            yield Problem(
                where,
                "kibana-version-too-low",
                "conditions.kibana.version must be ^8.8.0 or greater for non experimental "
                "input packages (version > 1.0.0)",
            )
    has_runtime = any(
        f.spec.get("runtime") not in (False, None)
        for ff in fields.fields_files(ctx)
        for f in fields.visit(ctx.doc(ff.path))
    )
    if has_runtime and not _kibana_at_least(ctx, "8.10.0"):
        yield Problem(
            where,
            "kibana-version-too-low",
            "conditions.kibana.version must be ^8.10.0 or greater to include runtime fields",
        )
    if (
        ctx.package_type != "input"
        and ctx.pkg.is_file("kibana/tags.yml")
        and not _kibana_at_least(ctx, "8.10.0")
    ):
        yield Problem(
            where,
            "kibana-version-too-low",
            "conditions.kibana.version must be ^8.10.0 or greater to include saved object tags "
            "file: kibana/tags.yml (SVR00005)",
        )


def rule_routing_rules(ctx: Context) -> Iterator[Problem]:
    for ds in ctx.pkg.data_streams():
        if not ctx.pkg.is_file(f"{ds.dir}/routing_rules.yml"):
            continue
        doc = ctx.doc(ds.manifest_path)
        if isinstance(doc, dict) and not _s(doc.get("dataset")):
            yield Problem(
                ds.manifest_path,
                "routing-rules-dataset",
                f'routing rules defined in data stream "{ds.name}" but dataset field is missing: '
                f'dataset field is required in manifest for data stream "{ds.name}"',
            )


def _required_packages(ctx: Context) -> dict[str, str]:
    requires = ctx.manifest.get("requires")
    out: dict[str, str] = {}
    for kind in ("input", "content"):
        for dep in _maps(requires.get(kind) if isinstance(requires, dict) else None):
            if isinstance(dep.get("package"), str) and isinstance(dep.get("version"), str):
                out[dep["package"]] = dep["version"]
    return out


def _test_requirement(
    ctx: Context, path: str, location: str, req: dict[str, Any], required: dict[str, str]
) -> Iterator[Problem]:
    name, version, source = _s(req.get("package")), _s(req.get("version")), _s(req.get("source"))
    rule = "test-requires"
    if name and version:
        constraint = required.get(name)
        if constraint is None:
            yield Problem(
                path,
                rule,
                f'{location} references package "{name}" which is not listed in manifest '
                f"requires section",
            )
            return
        try:
            wanted = Constraint.parse(constraint)
            got = Version.parse_lenient(version)
        except VersionError as exc:
            yield Problem(path, rule, f'{location} package "{name}": {exc.message}')
            return
        if not wanted.check(got):
            yield Problem(
                path,
                rule,
                f'{location} package "{name}" version "{version}" does not satisfy constraint '
                f'"{constraint}"',
            )
    elif source:
        if source.startswith("/"):
            yield Problem(
                path, rule, f'source path to required package "{source}" must be relative'
            )
            return
        target = posixpath.normpath(source)
        if not target.startswith("..") and not ctx.pkg.exists(target):
            # a source outside the package cannot be seen from here and is not refused
            yield Problem(path, rule, f'source path to required package "{source}" does not exist')


TEST_CONFIGS = re.compile(
    r"data_stream/[^/]+/_dev/test/(system/test-[^/]*-config|policy/test-[^/]*|"
    r"static/test-[^/]*-config)\.yml"
)


def rule_test_requires(ctx: Context) -> Iterator[Problem]:
    required = _required_packages(ctx)
    config = ctx.doc("_dev/test/config.yml")
    if isinstance(config, dict):
        for test_type in ("system", "policy", "pipeline", "static", "asset"):
            section = config.get(test_type)
            reqs = section.get("requires") if isinstance(section, dict) else None
            for i, req in enumerate(reqs if isinstance(reqs, list) else []):
                if isinstance(req, dict):
                    yield from _test_requirement(
                        ctx, "_dev/test/config.yml", f"{test_type}.requires[{i}]", req, required
                    )
    for path in ctx.pkg.files:
        if not TEST_CONFIGS.fullmatch(path):
            continue
        doc = ctx.doc(path)
        reqs = doc.get("requires") if isinstance(doc, dict) else None
        for i, req in enumerate(reqs if isinstance(reqs, list) else []):
            if isinstance(req, dict):
                yield from _test_requirement(ctx, path, f"requires[{i}]", req, required)


def _replaced_by(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    rb = value.get("replaced_by")
    return rb if isinstance(rb, dict) else None


def rule_replaced_by(ctx: Context) -> Iterator[Problem]:
    """``deprecated.replaced_by`` names what replaces the deprecated thing at its own level."""
    rule = "deprecated-replaced-by"
    m = ctx.manifest
    rb = _replaced_by(m.get("deprecated"))
    if rb is not None and not _s(rb.get("package")):
        yield Problem(
            MANIFEST,
            rule,
            "deprecated.replaced_by.package must be specified when deprecated.replaced_by is used",
        )
    for t in _maps(m.get("policy_templates")):
        rb = _replaced_by(t.get("deprecated"))
        if rb is not None and not _s(rb.get("policy_template")):
            yield Problem(
                MANIFEST,
                rule,
                "policy_template deprecated.replaced_by.policy_template must be specified when "
                "deprecated.replaced_by is used",
            )
        for item in _maps(t.get("inputs")):
            rb = _replaced_by(item.get("deprecated"))
            if rb is not None and not _s(rb.get("input")):
                yield Problem(
                    MANIFEST,
                    rule,
                    "input deprecated.replaced_by.input must be specified when "
                    "deprecated.replaced_by is used",
                )
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        if not isinstance(doc, dict):
            continue
        rb = _replaced_by(doc.get("deprecated"))
        if rb is not None and not _s(rb.get("data_stream")):
            yield Problem(
                ds.manifest_path,
                rule,
                "deprecated.replaced_by.data_stream must be specified when deprecated.replaced_by "
                "is used",
            )
        for stream in _maps(doc.get("streams")):
            for var in _maps(stream.get("vars")):
                rb = _replaced_by(var.get("deprecated"))
                if rb is not None and not _s(rb.get("variable")):
                    yield Problem(
                        ds.manifest_path,
                        rule,
                        "variable deprecated.replaced_by.variable must be specified when "
                        "deprecated.replaced_by is used",
                    )


def rule_dynamic_signal_types(ctx: Context) -> Iterator[Problem]:
    """Input packages: ``dynamic_signal_types`` only with the ``otelcol`` input, without a type."""
    if ctx.package_type != "input":
        return
    for t in _maps(ctx.manifest.get("policy_templates")):
        if t.get("dynamic_signal_types") is not True:
            continue
        name = _s(t.get("name"))
        if t.get("input") != "otelcol":
            yield Problem(
                MANIFEST,
                "dynamic-signal-types",
                f'policy template "{name}": dynamic_signal_types is only allowed when input is '
                f"'otelcol', got '{_s(t.get('input'))}'",
            )
        elif _s(t.get("type")):
            yield Problem(
                MANIFEST,
                "dynamic-signal-types",
                f'policy template "{name}": type field must not be set when dynamic_signal_types '
                f"is true",
            )


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def parse_duration(text: str) -> float | None:
    """Nanoseconds of a Go duration (``1h30m``, ``-5s``, ``0``), or None when it is not one."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    if not body:
        return None
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    return sign * total


def _all_vars(ctx: Context) -> Iterator[tuple[str, dict[str, Any]]]:
    m = ctx.manifest
    for v in _maps(m.get("vars")):
        yield MANIFEST, v
    for t in _maps(m.get("policy_templates")):
        for v in _maps(t.get("vars")):
            yield MANIFEST, v
        for item in _maps(t.get("inputs")):
            for v in _maps(item.get("vars")):
                yield MANIFEST, v
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        for s in _maps(doc.get("streams") if isinstance(doc, dict) else None):
            for v in _maps(s.get("vars")):
                yield ds.manifest_path, v


def rule_duration_vars(ctx: Context) -> Iterator[Problem]:
    """Duration variables: min_duration, default and max_duration parse, in that order."""
    for path, var in _all_vars(ctx):
        if var.get("type") != "duration":
            continue
        name = _s(var.get("name"))
        values: dict[str, float] = {}
        for key in ("min_duration", "default", "max_duration"):
            raw = var.get(key)
            if raw is None:
                continue
            parsed = parse_duration(raw) if isinstance(raw, str) else None
            if parsed is None:
                yield Problem(
                    path, "duration-var", f'variable "{name}": invalid {key} value {raw!r}'
                )
                continue
            if key == "min_duration" and parsed < 0:
                yield Problem(
                    path, "duration-var", f'variable "{name}": negative min_duration value {raw!r}'
                )
            values[key] = parsed
        low, default, high = (values.get(k) for k in ("min_duration", "default", "max_duration"))
        if low is not None and high is not None and low > high:
            yield Problem(
                path,
                "duration-var",
                f'variable "{name}": min_duration is greater than max_duration',
            )
        if default is not None and low is not None and default < low:
            yield Problem(
                path, "duration-var", f'variable "{name}": default is less than min_duration'
            )
        if default is not None and high is not None and default > high:
            yield Problem(
                path, "duration-var", f'variable "{name}": default is greater than max_duration'
            )


def _sections_scope(path: str, scope: str, sections: Any, variables: Any) -> Iterator[Problem]:
    names: set[str] = set()
    for section in _maps(sections):
        name = _s(section.get("name"))
        if name in names:
            yield Problem(path, "sections", f'duplicate section name "{name}" in {scope}')
        names.add(name)
    for var in _maps(variables):
        wanted = _s(var.get("section"))
        if wanted and wanted not in names:
            yield Problem(
                path,
                "sections",
                f'var "{_s(var.get("name"))}" references undefined section "{wanted}" in {scope}',
            )


def rule_sections(ctx: Context) -> Iterator[Problem]:
    """Section names are unique in their scope, and a variable's ``section`` is one of them."""
    m = ctx.manifest
    yield from _sections_scope(MANIFEST, "package root", m.get("sections"), m.get("vars"))
    for t in _maps(m.get("policy_templates")):
        yield from _sections_scope(MANIFEST, "policy template", t.get("sections"), t.get("vars"))
        for item in _maps(t.get("inputs")):
            yield from _sections_scope(MANIFEST, "input", item.get("sections"), item.get("vars"))
    for ds in ctx.pkg.data_streams():
        doc = ctx.doc(ds.manifest_path)
        for i, stream in enumerate(_maps(doc.get("streams") if isinstance(doc, dict) else None)):
            label = _s(stream.get("title")) or _s(stream.get("input")) or f"stream[{i}]"
            yield from _sections_scope(
                ds.manifest_path, f'stream "{label}"', stream.get("sections"), stream.get("vars")
            )


Rule = Callable[[Context], Iterator[Problem]]

RULES: tuple[tuple[Rule, str | None, tuple[str, ...]], ...] = (
    # (rule, since format_version, package types; () = all)
    (fields.check, None, ()),
    (rule_built_sources, None, ("integration",)),
    (rule_kibana_ids, None, ("integration", "content")),
    (rule_kibana_tags, None, ()),
    (rule_security_capability, "2.10.0", ()),
    (rule_ilm_policy, "2.0.0", ("integration",)),
    (rule_template_paths, None, ("integration", "input")),
    (rule_requires, "3.6.0", ("integration",)),
    (rule_categories, None, ("integration",)),
    (rule_package_categories, None, ("integration",)),
    (rule_deployment_modes, None, ("integration",)),
    (rule_inputs_deprecated, "3.6.0", ("integration",)),
    (rule_input_qualifier, "3.6.0", ("integration",)),
    (rule_var_groups, "3.6.0", ()),
    (rule_agent_version, None, ()),
    (rule_minimum_kibana, None, ()),
    (rule_routing_rules, "2.9.0", ("integration",)),
    (rule_test_requires, "3.6.0", ("integration",)),
    (rule_replaced_by, "3.6.0", ()),
    (kibana.rule_dangling, "3.0.0", ()),
    (kibana.rule_by_reference, None, ("integration", "content")),
    (releases.rule_prerelease, None, ()),
    (releases.rule_profiles_not_ga, None, ("integration",)),
    (releases.rule_spec_beta_feature, None, ("content",)),
    (releases.rule_changelog_links, None, ()),
    (templates.check, None, ("integration", "input")),
    (rule_dynamic_signal_types, "3.6.0", ("input",)),
    (rule_duration_vars, "3.5.0", ()),
    (rule_sections, None, ()),
)

WARN_BEFORE_3 = {rule_minimum_kibana, kibana.rule_by_reference}
"""Rules whose coded problems (a spec code such as SVR00005 in the message) are warnings before
format_version 3.0.0, as the package-spec runs them; problems without a code stay errors."""
CODE = re.compile(r"\((?:SVR|JSE|PSR)\d{5}\)")


def _applies(ctx: Context, since: str | None, types: tuple[str, ...]) -> bool:
    return (since is None or ctx.fv >= V(since)) and (not types or ctx.package_type in types)


def check(ctx: Context) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of every semantic rule that applies to the package."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for rule, since, types in RULES:
        if not _applies(ctx, since, types):
            continue
        for problem in rule(ctx):
            if rule in WARN_BEFORE_3 and ctx.fv < V("3.0.0") and CODE.search(problem.message):
                warnings.append(problem)
            else:
                errors.append(problem)
    return errors, warnings
