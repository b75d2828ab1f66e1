"""Objects plus watch events: the testbed's API server storage.

Objects are replaced, never changed in place, so a snapshot is a shallow copy of the
index and a rejected apply is undone by putting the snapshot back.
"""
from __future__ import annotations

import copy
import time
import uuid
from typing import Callable

Key = tuple[str, str, str]  # (kind, namespace or "", name)
Watcher = Callable[[str, dict], None]

SYSTEM_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def key_of(obj: dict) -> Key:
    md = obj["metadata"]
    return obj["kind"], md.get("namespace") or "", md["name"]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def comparable(obj: dict) -> dict:
    """The object without the fields the store sets itself."""
    out = dict(obj)
    out["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k not in SYSTEM_FIELDS}
    return out


class Store:
    def __init__(self) -> None:
        self.objects: dict[Key, dict] = {}
        self.version = 0
        self._watchers: list[Watcher] = []
        self._pending: list[tuple[str, dict]] = []

    def watch(self, fn: Watcher) -> None:
        self._watchers.append(fn)

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        return self.objects.get((kind, namespace or "", name))

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        out = [o for (k, ns, _), o in self.objects.items() if k == kind and (namespace is None or ns == namespace)]
        return sorted(out, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def put(self, obj: dict) -> str:
        """Store a new version; returns 'created', 'configured' or 'unchanged'."""
        key = key_of(obj)
        old = self.objects.get(key)
        if old is not None and comparable(old) == comparable(obj):
            return "unchanged"
        obj = copy.deepcopy(obj)
        md = obj["metadata"]
        self.version += 1
        md["resourceVersion"] = str(self.version)
        if old is None:
            md["uid"] = md.get("uid") or str(uuid.uuid4())
            md["creationTimestamp"] = md.get("creationTimestamp") or now()
            if "spec" in obj:
                md["generation"] = 1
        else:
            md["uid"] = old["metadata"]["uid"]
            md["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            if "generation" in old["metadata"]:
                changed = old.get("spec") != obj.get("spec")
                md["generation"] = old["metadata"]["generation"] + (1 if changed else 0)
        self.objects[key] = obj
        self._pending.append(("ADDED" if old is None else "MODIFIED", obj))
        return "created" if old is None else "configured"

    def delete(self, key: Key) -> dict | None:
        obj = self.objects.pop(key, None)
        if obj is not None:
            self.version += 1
            self._pending.append(("DELETED", obj))
        return obj

    def snapshot(self) -> tuple[dict, int, int]:
        return dict(self.objects), self.version, len(self._pending)

    def restore(self, snap: tuple[dict, int, int]) -> None:
        self.objects, self.version, n = snap[0], snap[1], snap[2]
        del self._pending[n:]

    def flush(self) -> None:
        """Tell the watchers about everything committed since the last flush."""
        events, self._pending = self._pending, []
        for ev, obj in events:
            for fn in self._watchers:
                fn(ev, obj)
