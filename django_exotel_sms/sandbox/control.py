"""``SandboxControl``: drive a sandbox running in another process through ``/_sandbox/``."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import requests

__all__ = ["SandboxControl"]


class SandboxControl:
    """``SandboxControl("http://127.0.0.1:8765").configure(throttle_rate=0.1)``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _get(self, name: str, params: dict[str, Any] | None = None, wait: float = 0.0) -> Any:
        response = self._session.get(
            f"{self.url}/_sandbox/{name}", params=params, timeout=self.timeout + wait
        )
        response.raise_for_status()
        return response.json()

    def _post(self, name: str, payload: Any = None) -> Any:
        response = self._session.post(
            f"{self.url}/_sandbox/{name}", json=payload, timeout=self.timeout
        )
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("health")
        return result

    def wait_until_up(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("requests", {"since": since})
        return result

    def callbacks(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("callbacks", {"since": since})
        return result

    def recipients(self) -> Counter[str]:
        return Counter(self._get("recipients"))

    def messages(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._get("messages")
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("config")
        return result

    def configure(self, **faults: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._post("config", faults)
        return result

    def rules(self) -> list[dict[str, str]]:
        result: list[dict[str, str]] = self._get("rules")
        return result

    def set_rules(self, rules: list[Any], *, append: bool = False) -> list[dict[str, str]]:
        """Rules as ``"pattern=outcome"``, ``[pattern, outcome]`` or ``{pattern, outcome}``."""
        result: list[dict[str, str]] = self._post("rules", {"rules": rules, "append": append})
        return result

    def set_outcome(self, number: str, outcome: str) -> list[dict[str, str]]:
        result: list[dict[str, str]] = self._post("outcome", {"number": number, "outcome": outcome})
        return result

    def reset(self) -> None:
        self._post("reset")

    def wait_for_callbacks(self, timeout: float = 10.0) -> bool:
        result = self._get("wait", {"timeout": timeout}, wait=timeout)
        return bool(result["done"])

    def close(self) -> None:
        self._session.close()
