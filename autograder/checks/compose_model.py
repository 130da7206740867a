"""Reading a normalised compose model (``docker compose config --format json``): which service
plays which part, and where it listens. Shared by step 06's checks and the stack runner."""

from __future__ import annotations


def image_name(spec: object) -> str:
    """A service's image without tag or digest, Docker Hub's prefixes dropped ('prom/prometheus')."""
    image = str(spec.get("image") or "") if isinstance(spec, dict) else ""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.removeprefix("docker.io/").removeprefix("library/")


def roles(model: dict) -> tuple[str | None, str | None, str | None]:
    """(the service built from the workspace, Prometheus, Grafana), by what each runs; None when absent."""
    services = model.get("services") or {}
    built = [name for name, spec in services.items() if isinstance(spec, dict) and spec.get("build")]
    prometheus = [name for name, spec in services.items() if image_name(spec) == "prom/prometheus"]
    grafana = [name for name, spec in services.items() if image_name(spec) == "grafana/grafana"]
    return (built[0] if len(built) == 1 else None, next(iter(prometheus), None), next(iter(grafana), None))


def service_port(spec: dict, default: int) -> int:
    """The container port a service listens on, as its compose entry says (ports, then expose)."""
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and str(port.get("target", "")).isdigit():
            return int(port["target"])
    for exposed in spec.get("expose") or []:
        number = str(exposed).split("/", 1)[0]
        if number.isdigit():
            return int(number)
    return default
