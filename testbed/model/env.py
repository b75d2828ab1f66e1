"""Service environment variables kubelet gives a pod (Docker-links style)."""
from __future__ import annotations


def service_env(services: list[dict]) -> dict[str, str]:
    """Variables for the Services of one namespace, as in the seed's listing:
    REDIS_TEST_CLUSTERIP_SERVICE_HOST=10.96.0.12, ..._PORT=tcp://10.96.0.12:6379, ..."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not ip or ip == "None":
            continue
        ports = spec.get("ports") or []
        if not ports:
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        first = ports[0]
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            base = f"{prefix}_PORT_{p['port']}_{proto}"
            env[base] = f"{proto.lower()}://{ip}:{p['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(p["port"])
            env[f"{base}_ADDR"] = ip
    return env
