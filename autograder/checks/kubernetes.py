"""Reading rendered Kubernetes objects: what step 07's checks and the consistency report share.

The objects are what ``kubectl kustomize`` printed in the sandbox, parsed by the grader. Every
accessor tolerates a malformed object (a learner's YAML may put a list where a map belongs):
it answers None or an empty value, and the checks say what is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# The Kubernetes version the course validates against (kubernetes-validate's bundled schemas).
KUBERNETES_VERSION = "1.33.0"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
QUANTITY_MAX = Decimal(2**63 - 1)
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10**3),
            "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}  # fmt: skip


def quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity ("500m", "2", "1.5Gi", "1e3") as a number (CPUs, bytes); None if invalid."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = re.fullmatch(r"\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)\s*", str(value))
    if not match:
        return None
    try:
        number = Decimal(match.group(1))
        suffix = match.group(2)
        value = number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])
    except ArithmeticError:  # InvalidOperation, Overflow: "1e999999999"
        return None
    # Kubernetes stores quantities in 64 bits: anything larger is no quantity it accepts.
    return value if abs(value) <= QUANTITY_MAX else None


def mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def listing(value: object) -> list:
    return value if isinstance(value, list) else []


def dig(value: object, *keys: str) -> object:
    """value[k1][k2]... through maps only; None where a key is missing or a value is not a map."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Manifests:
    """The rendered objects, in the order kustomize printed them."""

    objects: tuple[dict, ...]

    def of_kind(self, *kinds: str) -> list[dict]:
        return [o for o in self.objects if o.get("kind") in kinds]

    def one(self, kind: str) -> dict | None:
        found = self.of_kind(kind)
        return found[0] if found else None

    def named(self, kind: str, name: object) -> dict | None:
        return next((o for o in self.of_kind(kind) if dig(o, "metadata", "name") == name), None)

    @property
    def kinds(self) -> list[str]:
        return sorted({str(o.get("kind")) for o in self.objects})

    def workload(self) -> dict | None:
        """The service's workload: the first Deployment (or StatefulSet, DaemonSet)."""
        found = self.of_kind(*WORKLOAD_KINDS)
        return found[0] if found else None


def describe(obj: dict) -> str:
    return f"{obj.get('kind', '?')}/{dig(obj, 'metadata', 'name') or '?'}"


def pod_spec(workload: dict | None) -> dict:
    return mapping(dig(workload, "spec", "template", "spec"))


def pod_labels(workload: dict | None) -> dict:
    return mapping(dig(workload, "spec", "template", "metadata", "labels"))


def containers(workload: dict | None) -> list[dict]:
    return [c for c in listing(pod_spec(workload).get("containers")) if isinstance(c, dict)]


def main_container(workload: dict | None) -> dict:
    """The service's container: the one that declares a containerPort, else the first."""
    found = containers(workload)
    with_ports = [c for c in found if listing(c.get("ports"))]
    return (with_ports or found or [{}])[0]


def container_ports(container: dict) -> dict[str, int]:
    """{port name ('' when unnamed, then the number as text too): number} of a container."""
    ports: dict[str, int] = {}
    for port in listing(container.get("ports")):
        number = mapping(port).get("containerPort")
        if isinstance(number, int) and not isinstance(number, bool):
            ports[str(mapping(port).get("name") or number)] = number
            ports.setdefault(str(number), number)
    return ports


def resolve_port(container: dict, port: object) -> int | None:
    """A probe's or Service's port (a number, or a name of the container's ports) as a number.
    A string is a name: "5000" names no port (a port name has a letter), as the API server says."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if not isinstance(port, str) or not re.search(r"[a-z]", port):
        return None
    return container_ports(container).get(port)


def selects(selector: object, labels: dict, *, plain: bool = False) -> bool:
    """Whether a selector picks ``labels``: a LabelSelector (matchLabels, matchExpressions: a
    Deployment's, a PDB's, a NetworkPolicy's, a ServiceMonitor's) or, with ``plain``, a map of
    labels (a Service's, where a key called matchLabels is just a label). An empty selector, or
    one the API server would refuse, picks nothing here."""
    selector = mapping(selector)
    if not selector:
        return False
    if plain:
        return all(isinstance(v, str) and labels.get(key) == v for key, v in selector.items())
    if set(selector) - {"matchLabels", "matchExpressions"}:
        return False
    for expression in listing(selector.get("matchExpressions")):
        expression = mapping(expression)
        key, operator, values = expression.get("key"), expression.get("operator"), listing(expression.get("values"))
        if operator not in SELECTOR_OPERATORS:
            return False
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    match_labels = selector.get("matchLabels", {})
    if not isinstance(match_labels, dict):
        return False
    return all(labels.get(key) == value for key, value in match_labels.items())


def environment(manifests: Manifests, container: dict) -> tuple[dict[str, str], list[str]]:
    """(variable -> value, ConfigMaps it names that are missing) as the container gets them from
    its ConfigMaps (envFrom) and its own env (which wins). Values from Secrets or fields are not
    known statically and are left out."""
    env: dict[str, str] = {}
    missing: list[str] = []
    for source in listing(container.get("envFrom")):
        reference = mapping(mapping(source).get("configMapRef"))
        if not reference:
            continue
        config_map = manifests.named("ConfigMap", reference.get("name"))
        if config_map is None:
            missing.append(str(reference.get("name")))
            continue
        prefix = str(mapping(source).get("prefix") or "")
        env.update({f"{prefix}{k}": str(v) for k, v in mapping(config_map.get("data")).items()})
    for variable in listing(container.get("env")):
        variable = mapping(variable)
        name = variable.get("name")
        if not isinstance(name, str):
            continue
        if "value" in variable:
            env[name] = str(variable["value"])
        reference = mapping(dig(variable, "valueFrom", "configMapKeyRef"))
        if reference:
            config_map = manifests.named("ConfigMap", reference.get("name"))
            if config_map is None:
                missing.append(str(reference.get("name")))
            elif reference.get("key") in mapping(config_map.get("data")):
                env[name] = str(config_map["data"][reference["key"]])
    return env, missing


def config_maps_used(manifests: Manifests, container: dict) -> list[dict]:
    """The ConfigMaps a container reads (envFrom, or a key through env valueFrom)."""
    names = [mapping(mapping(s).get("configMapRef")).get("name") for s in listing(container.get("envFrom"))]
    names += [dig(v, "valueFrom", "configMapKeyRef", "name") for v in listing(container.get("env"))]
    found = [manifests.named("ConfigMap", name) for name in dict.fromkeys(n for n in names if n)]
    return [c for c in found if c is not None]


def image_reference(image: object) -> tuple[str, str, str]:
    """(repository, tag, digest) of an image reference; '' for what it does not say."""
    text = str(image or "")
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
    repository, tag = text, ""
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = text.rsplit(":", 1)
    return repository, tag, digest
