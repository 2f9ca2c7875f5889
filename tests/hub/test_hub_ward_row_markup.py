"""The ward row's markup is well formed: an attribute never carries the page's own tags."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from html.parser import HTMLParser

from ward.hub.auth import Role


class _Titles(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.titles += [value or "" for name, value in attrs if name == "title"]


def test_last_observation_title_is_text_in_local_time(app_client, staff, admit, clock):
    nurse = staff(Role.HUB_NURSE)
    pid = admit(at=clock.now - dt.timedelta(days=1))
    response = app_client.post(f"/api/patients/{pid}/observations", headers=nurse.headers,
                               json={"observations": [{"code": "resp_rate", "value": 16,
                                                       "unit": "/min"}]})
    assert response.status_code == 201, response.text
    page = app_client.get(f"/ward/rows?patient_id={pid}", headers=nurse.headers)
    assert page.status_code == 200, page.text
    parser = _Titles()
    parser.feed(page.text)
    titles = [t for t in parser.titles if t.startswith("last observation")]
    assert titles, page.text[-2000:]
    # Before: `ago`'s <time …> markup went into the attribute unescaped and its quotes broke it.
    assert all("<" not in t and "time" not in t for t in titles), titles
    shown = clock.now.astimezone(zoneinfo.ZoneInfo("Europe/London")).strftime("%d %b %H:%M")
    assert titles == [f"last observation {shown}"], titles
