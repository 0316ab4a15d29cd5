"""Orthanc, the PACS the coordinators' and specialists' viewer reads: a store like the file
store, reached over its REST API. Only what Huizhen needs: store an instance, list and
delete studies, the series of a study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# requests loads with the first client (ORTHANC_URL set), not when the bot starts.
if TYPE_CHECKING:
    import requests


class OrthancUnavailable(ConnectionError):
    """Orthanc did not answer, or answered with a server error: try again later."""


class OrthancRefused(ValueError):
    """Orthanc will never take this request as it is (a file it cannot read)."""


@dataclass(frozen=True)
class StoredInstance:
    instance: str
    study: str


class OrthancClient:
    def __init__(
        self, url: str, user: str | None = None, password: str | None = None, timeout: float = 30
    ) -> None:
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        # Requests would read ~/.netrc and proxy variables: Orthanc is on the private network.
        self._session.trust_env = False
        if user is not None:
            self._session.auth = (user, password or "")

    def _call(
        self, method: str, path: str, body: bytes | None = None, missing_ok: bool = False
    ) -> requests.Response:
        import requests

        headers = {"Content-Type": "application/dicom"} if body is not None else {}
        try:
            response = self._session.request(
                method, self.url + path, data=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as error:
            raise OrthancUnavailable(type(error).__name__) from None
        if response.status_code == 404 and missing_ok:
            return response
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            raise OrthancUnavailable(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise OrthancRefused(f"HTTP {response.status_code}")
        return response

    def store(self, dicom: bytes) -> StoredInstance:
        found = self._call("POST", "/instances", dicom).json()
        return StoredInstance(instance=str(found["ID"]), study=str(found["ParentStudy"]))

    def studies(self) -> list[str]:
        return [str(study) for study in self._call("GET", "/studies").json()]

    def series_of(self, study: str) -> list[str]:
        response = self._call("GET", f"/studies/{study}", missing_ok=True)
        if response.status_code == 404:
            return []
        return [str(series) for series in response.json().get("Series", [])]

    def instances_of(self, study: str) -> set[str]:
        response = self._call("GET", f"/studies/{study}/instances", missing_ok=True)
        if response.status_code == 404:
            return set()
        return {str(item["ID"]) for item in response.json()}

    def delete_study(self, study: str) -> None:
        """Remove a study; one already gone is fine (an erasure run again)."""
        self._call("DELETE", f"/studies/{study}", missing_ok=True)

    def close(self) -> None:
        self._session.close()
