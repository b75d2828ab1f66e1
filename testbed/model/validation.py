"""Defaulting and validation of objects, worded like the Kubernetes API server.

``default(obj)`` fills in what the API server fills in; ``validate(obj)`` returns every
field error (checks that need the rest of the cluster, like allocated ports, live in
the controllers). Both are pure.
"""
from __future__ import annotations

import ipaddress
import re

from testbed.errors import FieldError, Raw, duplicate, forbidden, invalid, required, unsupported

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
            "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
MSG_PORT = "must be between 1 and 65535, inclusive"

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
# name rules per kind, as the API server applies them
NAME_RULE = {"Service": (DNS1035_LABEL, MSG_1035, 63), "Namespace": (DNS1123_LABEL, MSG_LABEL, 63)}


# ---- defaulting ---------------------------------------------------------------------------

def default(obj: dict, namespaced: bool) -> dict:
    md = obj.setdefault("metadata", {})
    if namespaced:
        md.setdefault("namespace", "default")
    kind = obj.get("kind")
    spec = obj.get("spec")
    if kind == "Service" and isinstance(spec, dict):
        _default_service(spec)
    elif kind == "Pod" and isinstance(spec, dict):
        default_pod_spec(spec)
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        if kind == "Deployment":
            spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                                  "maxUnavailable": "25%"}})
            spec.setdefault("revisionHistoryLimit", 10)
        if kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
        tpl = spec.get("template")
        if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict):
            default_pod_spec(tpl["spec"])
    elif kind in ("Endpoints",):
        for subset in obj.get("subsets") or []:
            for p in (subset.get("ports") or []) if isinstance(subset, dict) else []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
    elif kind == "EndpointSlice":
        for p in obj.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
        for ep in obj.get("endpoints") or []:
            if isinstance(ep, dict):
                ep.setdefault("conditions", {}).setdefault("ready", True)
    return obj


def _default_service(spec: dict) -> None:
    spec.setdefault("type", "ClusterIP")
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {}).setdefault("timeoutSeconds", 10800)
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            if "port" in p:
                p.setdefault("targetPort", p["port"])


def default_pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")


# ---- validation ---------------------------------------------------------------------------

def validate(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = obj["kind"]
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return [required("metadata")]
    name = md.get("name")
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        rule, msg, longest = NAME_RULE.get(kind, (DNS1123_SUBDOMAIN, MSG_SUBDOMAIN, 253))
        if not isinstance(name, str) or not rule.match(name):
            errs.append(invalid("metadata.name", name, msg))
        elif len(name) > longest:
            errs.append(invalid("metadata.name", name, f"must be no more than {longest} characters"))
    ns = md.get("namespace")
    if ns is not None and (not isinstance(ns, str) or not DNS1123_LABEL.match(ns)):
        errs.append(invalid("metadata.namespace", ns, MSG_LABEL))
    errs += _labels(md.get("labels"), "metadata.labels")
    check = {"Service": validate_service, "Pod": lambda o: validate_pod_spec(o.get("spec"), "spec"),
             "Deployment": _validate_workload, "ReplicaSet": _validate_workload,
             "StatefulSet": _validate_workload, "Endpoints": _validate_endpoints,
             "EndpointSlice": _validate_slice}.get(kind)
    if check:
        errs += check(obj)
    return errs


def _labels(labels: object, path: str) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid(path, labels, "must be a map of string keys and values")]
    errs = []
    for k, v in labels.items():
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            errs.append(invalid(f"{path}", v, "a valid label must be an empty string or consist of alphanumeric "
                                "characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    return errs


def _port(value: object, path: str) -> list[FieldError]:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        return [invalid(path, value, MSG_PORT)]
    return []


def _port_name(value: object, path: str) -> list[FieldError]:
    if not isinstance(value, str) or not value:
        return [invalid(path, value, "must be a string")]
    if len(value) > 15:
        return [invalid(path, value, "must be no more than 15 characters")]
    if not IANA_SVC_NAME.match(value) or "--" in value:
        return [invalid(path, value, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")]
    if not re.search("[a-z]", value):
        return [invalid(path, value, "must contain at least one letter (a-z)")]
    return []


def validate_service(obj: dict) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    stype = spec.get("type")
    if stype not in SERVICE_TYPES:
        return [unsupported("spec.type", stype, SERVICE_TYPES)]
    if stype == "ExternalName":
        if not spec.get("externalName"):
            errs.append(required("spec.externalName"))
        elif not DNS1123_SUBDOMAIN.match(str(spec["externalName"]).rstrip(".")):
            errs.append(invalid("spec.externalName", spec["externalName"], MSG_SUBDOMAIN))
        return errs
    cip = spec.get("clusterIP")
    headless = cip == "None"
    if cip not in (None, "", "None"):
        try:
            ipaddress.IPv4Address(cip)
        except ValueError:
            errs.append(invalid("spec.clusterIP", cip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if headless and stype != "ClusterIP":
        errs.append(invalid("spec.clusterIP", cip, "may not be set to 'None' for LoadBalancer or NodePort services"))
    ports = spec.get("ports")
    if not ports:
        if not headless:
            errs.append(required("spec.ports"))
        ports = []
    if not isinstance(ports, list):
        return errs + [invalid("spec.ports", ports, "must be a list")]
    names: set = set()
    seen: set = set()
    for i, p in enumerate(ports):
        path = f"spec.ports[{i}]"
        if not isinstance(p, dict):
            errs.append(invalid(path, p, "must be a mapping"))
            continue
        if len(ports) > 1 and not p.get("name"):
            errs.append(required(f"{path}.name"))
        elif p.get("name"):
            if not isinstance(p["name"], str) or not DNS1123_LABEL.match(p["name"]):
                errs.append(invalid(f"{path}.name", p["name"], MSG_LABEL))
            elif p["name"] in names:
                errs.append(duplicate(f"{path}.name", p["name"]))
            names.add(p.get("name"))
        if "port" not in p:
            errs.append(required(f"{path}.port"))
        else:
            errs += _port(p["port"], f"{path}.port")
        if p.get("protocol") not in PROTOCOLS:
            errs.append(unsupported(f"{path}.protocol", p.get("protocol"), PROTOCOLS))
        key = (p.get("port"), p.get("protocol"))
        if key in seen:
            errs.append(duplicate(path, {"port": p.get("port"), "protocol": p.get("protocol")}))
        seen.add(key)
        tp = p.get("targetPort")
        if isinstance(tp, str) and not tp.isdigit():
            errs += _port_name(tp, f"{path}.targetPort")
        elif tp is not None:
            errs += _port(int(tp) if isinstance(tp, str) else tp, f"{path}.targetPort")
        if "nodePort" in p and p["nodePort"] not in (None, 0):
            if stype not in ("NodePort", "LoadBalancer"):
                errs.append(forbidden(f"{path}.nodePort", f"may not be used when `type` is '{stype}'"))
            else:
                errs += _port(p["nodePort"], f"{path}.nodePort")
    aff = spec.get("sessionAffinity")
    if aff not in ("None", "ClientIP"):
        errs.append(unsupported("spec.sessionAffinity", aff, ["ClientIP", "None"]))
    elif aff == "ClientIP":
        t = spec.get("sessionAffinityConfig", {}).get("clientIP", {}).get("timeoutSeconds")
        if not isinstance(t, int) or not 0 < t <= 86400:
            errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", t,
                                "must be greater than 0 and less than 86400"))
    etp = spec.get("externalTrafficPolicy")
    if etp is not None:
        if stype not in ("NodePort", "LoadBalancer"):
            errs.append(invalid("spec.externalTrafficPolicy", etp,
                                "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
        elif etp not in ("Cluster", "Local"):
            errs.append(unsupported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    if spec.get("internalTrafficPolicy") not in ("Cluster", "Local"):
        errs.append(unsupported("spec.internalTrafficPolicy", spec.get("internalTrafficPolicy"), ["Cluster", "Local"]))
    sel = spec.get("selector")
    if sel is not None:
        errs += _labels(sel, "spec.selector")
    return errs


def validate_pod_spec(spec: object, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [required(path)]
    errs: list[FieldError] = []
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        return [required(f"{path}.containers")]
    cnames: set = set()
    for i, c in enumerate(containers):
        cp = f"{path}.containers[{i}]"
        if not isinstance(c, dict):
            errs.append(invalid(cp, c, "must be a mapping"))
            continue
        name = c.get("name")
        if not name:
            errs.append(required(f"{cp}.name"))
        elif not isinstance(name, str) or not DNS1123_LABEL.match(name):
            errs.append(invalid(f"{cp}.name", name, MSG_LABEL))
        elif name in cnames:
            errs.append(duplicate(f"{cp}.name", name))
        cnames.add(name)
        for key in ("command", "args"):
            if key in c and (not isinstance(c[key], list) or not all(isinstance(a, (str, int, float)) for a in c[key])):
                errs.append(invalid(f"{cp}.{key}", c[key], "must be a list of strings"))
        pnames: set = set()
        for j, p in enumerate(c.get("ports") or []):
            pp = f"{cp}.ports[{j}]"
            if not isinstance(p, dict):
                errs.append(invalid(pp, p, "must be a mapping"))
                continue
            if "containerPort" not in p:
                errs.append(required(f"{pp}.containerPort"))
            else:
                errs += _port(p["containerPort"], f"{pp}.containerPort")
            if "hostPort" in p:
                errs += _port(p["hostPort"], f"{pp}.hostPort")
            if p.get("protocol") not in PROTOCOLS:
                errs.append(unsupported(f"{pp}.protocol", p.get("protocol"), PROTOCOLS))
            if "name" in p:
                errs += _port_name(p["name"], f"{pp}.name")
                if p["name"] in pnames:
                    errs.append(duplicate(f"{pp}.name", p["name"]))
                pnames.add(p["name"])
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        errs.append(unsupported(f"{path}.restartPolicy", spec.get("restartPolicy"), ["Always", "OnFailure", "Never"]))
    dns = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
    if spec.get("dnsPolicy") not in dns:
        errs.append(unsupported(f"{path}.dnsPolicy", spec.get("dnsPolicy"), dns))
    for key in ("hostname", "subdomain"):
        if key in spec and (not isinstance(spec[key], str) or not DNS1123_LABEL.match(spec[key])):
            errs.append(invalid(f"{path}.{key}", spec[key], MSG_LABEL))
    ns = spec.get("nodeSelector")
    if ns is not None:
        errs += _labels(ns, f"{path}.nodeSelector")
    return errs


def _validate_workload(obj: dict) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    r = spec.get("replicas")
    if not isinstance(r, int) or isinstance(r, bool) or r < 0:
        errs.append(invalid("spec.replicas", r, "must be greater than or equal to 0"))
    sel = spec.get("selector")
    tpl = spec.get("template")
    if not isinstance(tpl, dict):
        return errs + [required("spec.template")]
    labels = (tpl.get("metadata") or {}).get("labels") or {}
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        errs.append(required("spec.selector"))
    elif not selector_matches(sel, labels):
        shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
        errs.append(FieldError("spec.template.metadata.labels", "Invalid value", Raw(shown),
                               "`selector` does not match template `labels`"))
    errs += _labels(labels, "spec.template.metadata.labels")
    errs += validate_pod_spec(tpl.get("spec"), "spec.template.spec")
    if obj["kind"] == "StatefulSet" and "serviceName" in spec and not DNS1123_LABEL.match(str(spec["serviceName"])):
        errs.append(invalid("spec.serviceName", spec["serviceName"], MSG_LABEL))
    return errs


def _validate_endpoints(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        sp = f"subsets[{i}]"
        if not isinstance(subset, dict):
            errs.append(invalid(sp, subset, "must be a mapping"))
            continue
        for key in ("addresses", "notReadyAddresses"):
            for j, a in enumerate(subset.get(key) or []):
                if not isinstance(a, dict) or not _is_ip(a.get("ip")):
                    errs.append(invalid(f"{sp}.{key}[{j}].ip", (a or {}).get("ip") if isinstance(a, dict) else a,
                                        "must be a valid IP address"))
        for j, p in enumerate(subset.get("ports") or []):
            errs += _port(p.get("port") if isinstance(p, dict) else p, f"{sp}.ports[{j}].port")
    return errs


def _validate_slice(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    if obj.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
        errs.append(unsupported("addressType", obj.get("addressType"), ["FQDN", "IPv4", "IPv6"]))
    for i, ep in enumerate(obj.get("endpoints") or []):
        addrs = ep.get("addresses") if isinstance(ep, dict) else None
        if not addrs:
            errs.append(required(f"endpoints[{i}].addresses"))
            continue
        for j, a in enumerate(addrs):
            if not _is_ip(a):
                errs.append(invalid(f"endpoints[{i}].addresses[{j}]", a, "must be a valid IP address"))
    for i, p in enumerate(obj.get("ports") or []):
        if isinstance(p, dict) and p.get("port") is not None:
            errs += _port(p["port"], f"ports[{i}].port")
    return errs


def _is_ip(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
        return True
    except ValueError:
        return False


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label map."""
    if not selector:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def labels_match(selector: dict | None, labels: dict) -> bool:
    """A Service-style selector (plain map): every pair must be present."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
