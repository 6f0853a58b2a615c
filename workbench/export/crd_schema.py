"""Validate manifests against real CustomResourceDefinitions, as a strict API server would, offline.

Given the CRD files of the engines (``kubectl get crd <name> -o yaml``, or the release's own files, as
the tests use), a manifest is checked the way ``kubectl apply --validate=strict`` and the API server
check it: the version's ``openAPIV3Schema`` becomes a JSON Schema in which an object that lists its
properties admits no other field (unless ``x-kubernetes-preserve-unknown-fields``); schema defaults are
applied; then the CEL rules (``x-kubernetes-validations``) are compiled and evaluated at each place
they sit. Transition rules (those reading ``oldSelf``) only run on updates and are skipped, as on
create. ``jsonschema`` and ``cel-python`` are imported on use: the product needs neither to export.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import InvalidInput

_VALUE_KEYS = ("enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
               "uniqueItems", "minProperties", "maxProperties", "required", "multipleOf", "default")
#: ObjectMeta fields a manifest may set (the server fills the rest); anything else is an unknown field.
OBJECT_META = {
    "type": "object", "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}, "namespace": {"type": "string"},
                   "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                   "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                   "finalizers": {"type": "array", "items": {"type": "string"}},
                   "ownerReferences": {"type": "array", "items": {"type": "object"}}},
}


def load_crd(path: str | Path) -> dict[str, Any]:
    """A CRD file, parsed with libyaml when available (the big ones take seconds with the pure parser)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, "rb") as handle:
        crd = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise InvalidInput(f"{path} is not a CustomResourceDefinition")
    return crd


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 (Kubernetes structural) schema as a strict JSON Schema."""
    out: dict[str, Any] = {k: copy.deepcopy(schema[k]) for k in _VALUE_KEYS if k in schema}
    if "type" in schema and not schema.get("x-kubernetes-int-or-string"):
        out["type"] = schema["type"]
    if schema.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("exclusiveMinimum") is True and "minimum" in schema:
        out["exclusiveMinimum"] = out.pop("minimum")
    if schema.get("exclusiveMaximum") is True and "maximum" in schema:
        out["exclusiveMaximum"] = out.pop("maximum")
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [to_json_schema(s) for s in schema[key]]
    if "not" in schema:
        out["not"] = to_json_schema(schema["not"])
    if "items" in schema and isinstance(schema["items"], Mapping):
        out["items"] = to_json_schema(schema["items"])
    properties = dict(schema.get("properties") or {})
    if schema.get("x-kubernetes-embedded-resource"):
        for key in ("apiVersion", "kind"):
            properties.setdefault(key, {"type": "string"})
        properties.setdefault("metadata", {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    if properties:
        out["properties"] = {k: to_json_schema(v) for k, v in properties.items()}
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        out["additionalProperties"] = to_json_schema(additional)
    elif isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif properties and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` with the schema's defaults filled in where fields are absent, as the API server does
    before it evaluates CEL rules."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            listed = set(schema.get("properties") or {})
            for key in [k for k in value if k not in listed]:
                value[key] = apply_defaults(additional, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _rule_sites(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path, rule, value
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if key in value:
                yield from _rule_sites(sub, value[key], f"{path}.{key}")
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in [k for k in value if k not in properties]:
                yield from _rule_sites(additional, value[key], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from _rule_sites(schema["items"], item, f"{path}[{i}]")


def cel_rules(schema: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every CEL rule of a schema with the schema path it sits at (for compiling them all)."""
    for rule in schema.get("x-kubernetes-validations") or []:
        yield "", rule
    children: list[tuple[str, Any]] = [(f".{k}", v) for k, v in (schema.get("properties") or {}).items()]
    if isinstance(schema.get("items"), Mapping):
        children.append(("[]", schema["items"]))
    if isinstance(schema.get("additionalProperties"), Mapping):
        children.append((".*", schema["additionalProperties"]))
    for prefix, child in children:
        for path, rule in cel_rules(child):
            yield prefix + path, rule


@dataclass
class CrdValidator:
    """The checks of one CRD version: strict JSON Schema and compiled CEL rules."""

    group: str
    version: str
    kind: str
    schema: dict[str, Any]
    json_schema: dict[str, Any] = field(init=False)
    _programs: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        root = to_json_schema(self.schema)
        root.setdefault("properties", {})
        root["properties"]["apiVersion"] = {"const": f"{self.group}/{self.version}"}
        root["properties"]["kind"] = {"const": self.kind}
        root["properties"]["metadata"] = OBJECT_META
        root["required"] = sorted({*root.get("required", []), "apiVersion", "kind", "metadata"})
        root["additionalProperties"] = False
        self.json_schema = root

    @classmethod
    def from_crd(cls, crd: Mapping[str, Any], version: str | None = None) -> CrdValidator:
        spec = crd["spec"]
        versions = spec["versions"]
        chosen = next((v for v in versions if (v["name"] == version if version else v.get("storage"))), None)
        if chosen is None:
            raise InvalidInput(f"CRD {crd['metadata']['name']} has no version {version!r}")
        return cls(spec["group"], chosen["name"], spec["names"]["kind"], chosen["schema"]["openAPIV3Schema"])

    def program(self, rule: str) -> Any:
        """The compiled CEL program of ``rule`` (compiled once; a rule that does not compile raises)."""
        if rule not in self._programs:
            import celpy

            environment = celpy.Environment()
            self._programs[rule] = environment.program(environment.compile(rule))
        return self._programs[rule]

    def compile_all(self) -> int:
        """Compile every CEL rule of the schema (transition rules included); returns how many."""
        rules = [r["rule"] for _, r in cel_rules(self.schema)]
        for rule in rules:
            self.program(rule)
        return len(rules)

    def errors(self, manifest: Mapping[str, Any]) -> list[str]:
        """Every reason the API server would refuse to create ``manifest`` (empty: accepted)."""
        import jsonschema

        validator = jsonschema.Draft7Validator(self.json_schema)
        found = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                 for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))]
        if found:
            return found
        return self.cel_errors(manifest)

    def cel_errors(self, manifest: Mapping[str, Any]) -> list[str]:
        import celpy

        defaulted = apply_defaults(self.schema, copy.deepcopy(dict(manifest)))
        found = []
        for path, rule, value in _rule_sites(self.schema, defaulted, ""):
            if "oldSelf" in rule["rule"]:  # a transition rule: only evaluated on update
                continue
            try:
                result = self.program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
            except celpy.CELEvalError as exc:
                result = exc
            if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                found.append(f"{path.lstrip('.') or '<root>'}: {rule.get('message') or rule['rule']} (CEL "
                             f"{rule['rule']!r} gave {result!r})")
        return found

    def validate(self, manifest: Mapping[str, Any]) -> None:
        problems = self.errors(manifest)
        if problems:
            name = (manifest.get("metadata") or {}).get("name", "?")
            raise InvalidInput(f"{self.kind} {name} is refused by its CRD: " + "; ".join(problems))
