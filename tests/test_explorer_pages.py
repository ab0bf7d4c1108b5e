"""The explorer's pages over HTTP: what users see, what they may not, and hostile input (T01-T04, T31)."""

from __future__ import annotations

import re
import sqlite3
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.access.roles import VIEWER, add_grant, grant_template
from bastion.connections.models import Connection
from tests.conftest import login

pytestmark = pytest.mark.django_db

XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "javascript:alert(1)"]
# sqlmap-style probes: quotes, stacked statements, UNION, booleans, comments, time-based.
SQLI = ["' OR 1=1 --", "1; DROP TABLE people", "1' UNION SELECT password FROM secrets --", "1 OR 1=1",
        "') OR ('1'='1", "1 AND SLEEP(5)", "1' AND pg_sleep(5) --", '" OR ""="', "%' --", "1)) OR ((1=1"]


@pytest.fixture
def shop(tmp_path, settings, admin):
    """An SQLite database with a people table (a secret column), hostile names and values."""
    settings.SQLITE_ROOTS = [tmp_path]
    path = tmp_path / "shop.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.executescript("""
            CREATE TABLE secrets (id INTEGER PRIMARY KEY, password TEXT);
            INSERT INTO secrets VALUES (1, 'hunter2');
            CREATE TABLE teams (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
            INSERT INTO teams VALUES (1, 'Red'), (2, 'Blue');
            CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT, card TEXT,
                                 team_id INTEGER REFERENCES teams(id), photo BLOB, doc TEXT);
        """)
        rows = [(i, f"person {i}", f"p{i}@example.com", f"4111111111111{i:03d}", 1 + i % 2, b"\x89PNG" * i,
                 '{"k": [1, 2]}') for i in range(1, 31)]
        raw.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        raw.execute("INSERT INTO people (id, name, email) VALUES (31, ?, '')", (XSS[0],))
        raw.execute("INSERT INTO people (id, name, email) VALUES (32, ?, NULL)", (XSS[1],))
        table, column = (name.replace('"', '""') for name in (XSS[1], XSS[0]))
        raw.execute(f'CREATE TABLE "{table}" ("{column}" TEXT)')
        raw.execute(f'INSERT INTO "{table}" VALUES (?)', (XSS[2],))  # noqa: S608
    return Connection.objects.create(name="shop", engine="sqlite", sqlite_path=str(path))


def _url(name: str, connection: Connection, **params) -> str:
    return f"/db/{connection.pk}/{name}?{urlencode(params, doseq=True)}"


@pytest.fixture
def admin_client(client, admin):
    login(client, admin.username)
    return client


def test_database_page_lists_tables_with_counts(admin_client, shop):
    response = admin_client.get(f"/db/{shop.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "people" in body and "teams" in body and "32" in body


def test_table_page_shows_rows_null_and_empty_differently(admin_client, shop):
    response = admin_client.get(_url("table/", shop, t="people", sort="id", dir="desc", size="25"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="null"' in body and 'class="empty"' in body
    assert "binary · " in body and "Next" in body


@pytest.mark.parametrize("payload", XSS)
def test_T03_payloads_in_cells_and_identifiers_are_escaped(admin_client, shop, payload):
    for url in (f"/db/{shop.pk}/", _url("table/", shop, t="people", sort="id", dir="desc"),
                _url("table/", shop, t=XSS[1])):
        body = admin_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in body
        assert "<img src=x onerror" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in admin_client.get(_url("table/", shop, t=XSS[1])).content.decode()


@pytest.mark.parametrize("payload", [*XSS, "%3Cscript%3E"])
def test_T04_query_parameters_are_echoed_escaped(admin_client, shop, payload):
    response = admin_client.get(_url("table/", shop, t="people", q=payload, fc=["name", payload],
                                     fo=["contains", "eq"], fv=[payload, payload], sort=payload))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body and "<img src=x onerror" not in body


def _fingerprint(connection: Connection) -> list:
    with sqlite3.connect(connection.sqlite_path) as raw:
        tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master ORDER BY name")]
        return [(t, raw.execute(f'SELECT * FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchall())  # noqa: S608
                for t in tables]


@pytest.mark.parametrize("payload", SQLI)
def test_T01_injection_payloads_in_every_browse_input(admin_client, shop, payload):
    before = _fingerprint(shop)
    urls = [
        _url("table/", shop, t="people", q=payload),
        _url("table/", shop, t="people", fc="name", fo="eq", fv=payload),
        _url("table/", shop, t="people", fc="id", fo="in", fv=payload),
        _url("table/", shop, t="people", fc="name", fo="contains", fv=payload),
        _url("table/", shop, t="people", fc=payload, fo="eq", fv="1"),
        _url("table/", shop, t="people", fc="name", fo=payload, fv="1"),
        _url("table/", shop, t="people", sort=payload),
        _url("table/", shop, t="people", after=payload),
        _url("table/", shop, t="people", size=payload, offset=payload),
        _url("table/", shop, t=payload),
        _url("table/", shop, t="people", s=payload),
        _url("row/", shop, t="people", k=payload),
        f"/db/{shop.pk}/?{urlencode({'s': payload})}",
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        body = response.content.decode()
        assert "hunter2" not in body, url
    assert _fingerprint(shop) == before


def test_T02_table_names_must_be_spelled_as_in_the_catalogue(admin_client, shop):
    assert admin_client.get(_url("table/", shop, t="PEOPLE")).status_code == 404
    assert admin_client.get(_url("table/", shop, t="people; DROP TABLE teams")).status_code == 404
    assert admin_client.get(_url("table/", shop, t="sqlite_master")).status_code == 404


@pytest.fixture
def masked_viewer(client, shop, make_user):
    """A user whose role sees people.card masked (last 4), people.email hidden, and nothing of secrets."""
    user = make_user("vera")
    role = Group.objects.create(name="Support")
    add_grant(None, None, role, action=Action.VIEW, connection=shop, table="people")
    add_grant(None, None, role, action=Action.VIEW, connection=shop, table="teams")
    add_grant(None, None, role, action=Action.VIEW, connection=shop, table="people", column="card",
              column_mode=ColumnMode.MASKED, mask_rule=MaskRule.LAST4)
    add_grant(None, None, role, action=Action.VIEW, connection=shop, table="people", column="email",
              column_mode=ColumnMode.HIDDEN)
    user.groups.add(role)
    login(client, user.username)
    return client


def test_T31_masked_and_hidden_columns_on_every_page(masked_viewer, shop):
    body = masked_viewer.get(_url("table/", shop, t="people")).content.decode()
    assert "****1001" in body and "4111111111111001" not in body
    assert "p1@example.com" not in body and ">email<" not in body
    # Filtering or sorting on the masked column would reveal it: refused.
    for params in ({"fc": "card", "fo": "startswith", "fv": "4"}, {"sort": "card"}, {"q": "4111"}):
        body = masked_viewer.get(_url("table/", shop, t="people", **params)).content.decode()
        assert "4111111111111001" not in body
    body = masked_viewer.get(_url("table/", shop, t="people", fc="card", fo="startswith", fv="4")).content.decode()
    assert "card is masked for you" in body
    # The hidden column is unknown, exactly like a column that does not exist.
    body = masked_viewer.get(_url("table/", shop, t="people", fc="email", fo="eq", fv="x")).content.decode()
    assert "There is no column named &#x27;email&#x27;." in body
    # Search never matches a hidden or masked column.
    body = masked_viewer.get(_url("table/", shop, t="people", q="example.com")).content.decode()
    assert "No row matches" in body
    # Tables outside the grants do not exist for this user.
    assert masked_viewer.get(_url("table/", shop, t="secrets")).status_code in (403, 404)
    assert "secrets" not in masked_viewer.get(f"/db/{shop.pk}/").content.decode()
    # The row page shows the masked value too, and no download of it.
    table = masked_viewer.get(_url("table/", shop, t="people")).content.decode()
    row_link = re.search(r'href="(/db/\d+/row/\?[^"]+)"', table).group(1).replace("&amp;", "&")
    body = masked_viewer.get(row_link).content.decode()
    assert "****1001" in body and "4111111111111001" not in body and "p1@example.com" not in body
    download = row_link.replace("/row/", "/download/") + "&c=card"
    assert masked_viewer.get(download).status_code == 404
    assert masked_viewer.get(row_link.replace("/row/", "/download/") + "&c=email").status_code == 404


def test_blob_download_is_an_attachment(admin_client, shop):
    table = admin_client.get(_url("table/", shop, t="people")).content.decode()
    link = re.search(r'href="(/db/\d+/download/\?[^"]+)"', table).group(1).replace("&amp;", "&")
    response = admin_client.get(link)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/octet-stream"
    assert response.content == b"\x89PNG"


def test_foreign_keys_link_both_ways(admin_client, shop):
    table = admin_client.get(_url("table/", shop, t="people")).content.decode()
    links = re.findall(r'href="(/db/\d+/row/\?t=teams[^"]+)"', table)
    assert links
    team = admin_client.get(links[0].replace("&amp;", "&")).content.decode()
    assert "Red" in team or "Blue" in team
    assert "Referenced by" in team and "people" in team
    assert "15 rows" in team


def test_viewer_template_sees_but_cannot_change(client, shop, make_user):
    user = make_user("viv")
    grant_template(None, None, Group.objects.get(name=VIEWER), shop)
    user.groups.add(Group.objects.get(name=VIEWER))
    login(client, user.username)
    body = client.get(_url("table/", shop, t="people")).content.decode()
    assert "Insert row" not in body and "Delete selected" not in body
    assert client.get(_url("row/new/", shop, t="people")).status_code == 403
