"""A 10,000,000-row console result streams in constant memory (T28): neither its first page nor its download
raises the process's resident memory by more than a few tens of MB. Measured by sampling VmRSS, never time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.engines import postgresql_target, sqlite_target  # noqa: F401
from tests.explorer_fixtures import superuser

pytestmark = pytest.mark.django_db

ROWS = 10_000_000
ALLOWED_GROWTH_MB = 60
COUNTERS = {
    "sqlite": f"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {ROWS}) "
              "SELECT n, 'row number ' || n AS label FROM c",
    "postgresql": f"SELECT g AS n, 'row number ' || g AS label FROM generate_series(1, {ROWS}) AS g",
}


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class PeakResident:
    """The highest resident memory seen while the block runs, sampled every few milliseconds."""

    def __enter__(self) -> PeakResident:
        self.baseline = self.peak = resident_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident_mb())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_mb())

    @property
    def growth(self) -> float:
        return self.peak - self.baseline


@pytest.fixture(params=["sqlite", "postgresql"])
def big(request: pytest.FixtureRequest, client: Any) -> tuple[Any, Any]:
    t = request.getfixturevalue(f"{request.param}_target")
    client.force_login(superuser())
    return client, t


def test_T28_first_page_of_ten_million_rows_fetches_one_page(big):
    client, t = big
    with PeakResident() as memory:
        response = client.post(f"/db/{t.connection.pk}/console/", {"sql": COUNTERS[t.kind], "run": "1"})
    assert response.status_code == 200
    assert "row number 100" in response.content.decode()
    assert memory.growth < ALLOWED_GROWTH_MB, f"{memory.growth:.0f} MB more resident memory"


def test_T28_download_of_ten_million_rows_streams_in_constant_memory(big):
    client, t = big
    with PeakResident() as memory:
        response = client.post(f"/db/{t.connection.pk}/console/download/",
                               {"sql": COUNTERS[t.kind], "download": "1:csv"})
        assert response.status_code == 200
        lines = size = 0
        for chunk in response.streaming_content:
            lines += chunk.count(b"\n")
            size += len(chunk)
    assert lines == ROWS + 1  # the header, then every row: nothing cut
    assert size > ROWS * 10
    assert memory.growth < ALLOWED_GROWTH_MB, f"{memory.growth:.0f} MB more resident memory"
