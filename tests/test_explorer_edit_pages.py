"""Row changes over HTTP: one audit event per change (T33), lost races (T38), revert (T37), bulk delete
with re-authentication, and input kept across an expired session."""

from __future__ import annotations

import re
import sqlite3
import time
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.utils.html import escape

from bastion.accounts.middleware import SEEN
from bastion.audit.models import AuditEvent
from bastion.connections.models import Connection
from tests.conftest import MFA_STEP, STRONG_PASSWORD, login, recovery_code
from tests.engines import HOSTILE, target  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


class FormFields(HTMLParser):
    """What a browser would post for the first form with a submit button named like ``button``."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and "name" in a and a.get("type") != "file" and "disabled" not in a:
            if a.get("type") != "checkbox" or "checked" in a:
                self.data[a["name"]] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "textarea" and "disabled" not in a:
            self._textarea = a["name"]
            self.data[self._textarea] = ""
        elif tag == "select" and "disabled" not in a:
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data.removeprefix("\n") if not self.data[self._textarea] else data


def form_data(html: str) -> dict[str, str]:
    start = html.index('<form method="post" enctype')
    parser = FormFields()
    parser.feed(html[start: html.index("</form>", start)])
    return parser.data


def field_name(html: str, column: str) -> str:
    """The positional field name (c0, c1...) whose label is ``column``."""
    return re.search(rf'<label for="id_(c\d+)">{re.escape(escape(column))} <span', html).group(1)


@pytest.fixture
def shop(tmp_path, settings):
    settings.SQLITE_ROOTS = [tmp_path]
    path = tmp_path / "shop.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.executescript("""
            CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, phone TEXT);
            INSERT INTO people VALUES (1, 'Ada', NULL), (2, 'Bob', '555'), (3, 'Cy', NULL);
        """)
    return Connection.objects.create(name="shop", engine="sqlite", sqlite_path=str(path))


@pytest.fixture
def signed_in(client, admin):
    login(client, admin.username)
    return client


def url(connection, page: str, **params) -> str:
    return f"/db/{connection.pk}/{page}?{urlencode({'t': 'people', **params})}"


def row_token(client, connection, row_id: int) -> str:
    body = client.get(url(connection, "table/")).content.decode()
    tokens = re.findall(r'name="k" value="([^"]+)"', body)
    return unescape(tokens[row_id - 1])


def rows(connection) -> list[tuple]:
    with sqlite3.connect(connection.sqlite_path) as raw:
        return raw.execute("SELECT id, name, phone FROM people ORDER BY id").fetchall()


def new_events(since: int) -> list[str]:
    return list(AuditEvent.objects.filter(seq__gt=since).order_by("seq").values_list("action", flat=True))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_T33_every_row_change_writes_exactly_one_audit_event(signed_in, shop):
    client = signed_in
    # insert
    form = client.get(url(shop, "row/new/")).content.decode()
    data = form_data(form)
    data[field_name(form, "name")] = "Dee"
    seq = last_seq()
    response = client.post(url(shop, "row/new/"), data)
    assert response.status_code == 302 and new_events(seq) == ["row.insert"]
    assert rows(shop)[-1][1] == "Dee"
    # edit
    k = row_token(client, shop, 2)
    form = client.get(url(shop, "row/edit/", k=k)).content.decode()
    data = form_data(form)
    data[field_name(form, "name")] = "Bobby"
    seq = last_seq()
    assert client.post(url(shop, "row/edit/", k=k), data).status_code == 302
    assert new_events(seq) == ["row.update"] and rows(shop)[1] == (2, "Bobby", "555")
    # delete
    form = client.get(url(shop, "row/delete/", k=k)).content.decode()
    seq = last_seq()
    assert client.post(url(shop, "row/delete/", k=k), {"original": form_data_original(form)}).status_code == 302
    assert new_events(seq) == ["row.delete"] and [r[0] for r in rows(shop)] == [1, 3, 4]
    # revert the deletion
    event = AuditEvent.objects.get(action="row.delete")
    seq = last_seq()
    assert client.post(url(shop, f"changes/{event.seq}/revert/")).status_code == 302
    assert new_events(seq) == ["row.revert"] and rows(shop)[1] == (2, "Bobby", "555")
    changes_page = client.get(url(shop, "changes/")).content.decode()
    assert f"changes/{event.seq}/revert/" not in changes_page and "reverted</span>" in changes_page
    # bulk delete: the confirmation page changes nothing, the confirmed POST one event
    keys = [row_token(client, shop, 1), row_token(client, shop, 3)]
    seq = last_seq()
    confirm = client.post(url(shop, "rows/delete/"), {"k": keys})
    assert confirm.status_code == 200 and "Delete 2 rows" in confirm.content.decode()
    assert new_events(seq) == [] and len(rows(shop)) == 4
    assert client.post(url(shop, "rows/delete/"), {"k": keys, "confirm": "1"}).status_code == 302
    assert new_events(seq) == ["row.bulk_delete"] and [r[1] for r in rows(shop)] == ["Bobby", "Dee"]


def form_data_original(html: str) -> str:
    return unescape(re.search(r'name="original" value="([^"]+)"', html).group(1))


def test_T38_two_saves_from_forms_loaded_together_the_second_is_refused(signed_in, shop):
    client = signed_in
    k = row_token(client, shop, 1)
    first = client.get(url(shop, "row/edit/", k=k)).content.decode()
    second = client.get(url(shop, "row/edit/", k=k)).content.decode()
    data = form_data(first)
    data[field_name(first, "phone") + "_null"] = ""
    data.pop(field_name(first, "phone") + "_null")
    data[field_name(first, "phone")] = "777"
    assert client.post(url(shop, "row/edit/", k=k), data).status_code == 302
    stale = form_data(second)
    stale[field_name(second, "name")] = "Ada Lovelace"
    seq = last_seq()
    response = client.post(url(shop, "row/edit/", k=k), stale)
    body = response.content.decode()
    assert response.status_code == 409 and "Someone else changed this row" in body and "777" in body
    assert rows(shop)[0] == (1, "Ada", "777") and new_events(seq) == []  # nothing lost, nothing written
    # The form now carries the row as it is: the phone shows the new value, the user's rename is kept,
    # and saving again applies the rename on top without undoing the other change.
    again = form_data(body)
    assert again[field_name(body, "name")] == "Ada Lovelace" and again[field_name(body, "phone")] == "777"
    assert client.post(url(shop, "row/edit/", k=k), again).status_code == 302
    assert rows(shop)[0] == (1, "Ada Lovelace", "777")


def test_T37_revert_of_a_since_modified_row_is_refused(signed_in, shop):
    client = signed_in
    k = row_token(client, shop, 3)
    form = client.get(url(shop, "row/edit/", k=k)).content.decode()
    data = form_data(form)
    data[field_name(form, "name")] = "Cyril"
    client.post(url(shop, "row/edit/", k=k), data)
    update = AuditEvent.objects.get(action="row.update")
    with sqlite3.connect(shop.sqlite_path) as raw:
        raw.execute("UPDATE people SET name = 'Changed outside' WHERE id = 3")
    response = client.post(url(shop, f"changes/{update.seq}/revert/"), follow=True)
    assert "nothing was reverted" in response.content.decode().lower()
    assert rows(shop)[2][1] == "Changed outside"
    # An event of another table cannot be reverted through this table's URL.
    other = f"/db/{shop.pk}/changes/{update.seq}/revert/?t=nope"
    assert client.post(other).status_code == 404


def test_T01_injection_payloads_in_form_fields_are_stored_literally(signed_in, shop):
    client = signed_in
    payload = "'); DROP TABLE people; --"
    form = client.get(url(shop, "row/new/")).content.decode()
    data = form_data(form)
    data[field_name(form, "name")] = payload
    assert client.post(url(shop, "row/new/"), data).status_code == 302
    assert rows(shop)[-1][1] == payload and len(rows(shop)) == 4


def test_bulk_delete_above_the_limit_asks_for_the_password_first(signed_in, shop, settings, admin):
    settings.EXPLORER_BULK_REAUTH_ROWS = 1
    client = signed_in
    keys = [row_token(client, shop, 1), row_token(client, shop, 2)]
    confirm = client.post(url(shop, "rows/delete/"), {"k": keys}).content.decode()
    assert "asks for your password again" in confirm
    response = client.post(url(shop, "rows/delete/"), {"k": keys, "confirm": "1"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert len(rows(shop)) == 3  # nothing deleted yet
    # After the password, the confirmation comes back (the selection was kept) and confirming deletes.
    done = client.post(response["Location"], {"password": STRONG_PASSWORD})
    assert done.status_code == 302 and done["Location"] == url(shop, "rows/delete/")
    again = client.get(done["Location"])
    assert again.status_code == 200 and "Delete 2 rows" in again.content.decode()
    assert "asks for your password again" not in again.content.decode()
    assert client.post(done["Location"], {"k": keys, "confirm": "1"}).status_code == 302
    assert [r[0] for r in rows(shop)] == [3]
    assert AuditEvent.objects.filter(action="row.bulk_delete").count() == 1


def test_an_edit_submitted_after_the_session_expired_survives_the_new_login(signed_in, shop, settings, admin):
    client = signed_in
    k = row_token(client, shop, 2)
    edit = url(shop, "row/edit/", k=k)
    form = client.get(edit).content.decode()
    data = form_data(form)
    data[field_name(form, "name")] = "Typed before the timeout"
    session = client.session
    session[SEEN] = int(time.time()) - settings.SESSION_IDLE_TIMEOUT - 5
    session.save()
    response = client.post(edit, data)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "Typed" not in response["Location"]
    assert rows(shop)[1][1] == "Bob"
    back = client.post("/accounts/login/", {"login": admin.username, "password": STRONG_PASSWORD, "next": edit})
    assert back.status_code == 302 and back["Location"] == MFA_STEP  # the admin's second factor, then the form
    back = client.post(MFA_STEP, {"code": recovery_code(admin.username)})
    assert back.status_code == 302
    page = client.get(back["Location"]).content.decode()
    assert "Typed before the timeout" in page and "what you typed was kept" in page
    assert client.post(edit, form_data(page)).status_code == 302
    assert rows(shop)[1][1] == "Typed before the timeout"


SQLI_VALUES = ["' OR 1=1 --", "1; DROP TABLE people", "x' UNION SELECT name FROM sqlite_master --",
               "') OR ('1'='1", "1 AND SLEEP(5)", "%' --", '" OR ""="']


@pytest.mark.parametrize("payload", SQLI_VALUES)
def test_T01_payloads_in_every_form_field(signed_in, shop, payload):
    client = signed_in
    form = client.get(url(shop, "row/new/")).content.decode()
    before = rows(shop)
    data = form_data(form)
    data[field_name(form, "name")] = payload
    data[field_name(form, "phone")] = payload
    assert client.post(url(shop, "row/new/"), data).status_code == 302
    assert rows(shop)[-1][1:] == (payload, payload) and rows(shop)[:-1] == before
    # The key column is typed: a payload there is a validation error next to the field, nothing runs.
    k = row_token(client, shop, 1)
    edit = client.get(url(shop, "row/edit/", k=k)).content.decode()
    data = form_data(edit)
    data[field_name(edit, "id")] = payload
    response = client.post(url(shop, "row/edit/", k=k), data)
    assert response.status_code == 400 and "Enter a whole number." in response.content.decode()
    assert rows(shop)[0] == before[0]


def test_T02_hostile_identifiers_work_as_literal_names_on_every_engine(client, admin, target):  # noqa: F811
    table, column, other = HOSTILE[0], HOSTILE[1], HOSTILE[2]
    target.run(f"CREATE TABLE {target.table(table)} (id INTEGER PRIMARY KEY, {target.q(column)} VARCHAR(40), "
               f"{target.q(other)} INTEGER)")
    insert = f"INSERT INTO {target.table(table)} (id, {target.q(column)}, {target.q(other)}) "
    target.run(insert + "VALUES (1, 'one', 10), (2, 'two', 20)")
    login(client, admin.username)
    base = {"t": table, **({"s": target.schema} if target.schema else {})}
    page = f"/db/{target.connection.pk}/table/?"
    body = client.get(page + urlencode({**base, "sort": column, "dir": "desc"})).content.decode()
    assert body.index(">two<") < body.index(">one<")
    filtered = client.get(page + urlencode({**base, "fc": other, "fo": "gt", "fv": "15"})).content.decode()
    assert ">two<" in filtered and ">one<" not in filtered
    new = f"/db/{target.connection.pk}/row/new/?" + urlencode(base)
    form = client.get(new).content.decode()
    data = form_data(form)
    if 'for="id_c0">id <span' in form:  # SQLite numbers an INTEGER PRIMARY KEY itself: not asked
        data[field_name(form, "id")] = "3"
    data[field_name(form, column)] = "three"
    data[field_name(form, other)] = "30"
    assert client.post(new, data).status_code == 302
    with target.admin.connect() if target.admin else sqlite3.connect(target.sqlite_path) as conn:
        sql = f"SELECT count(*) FROM {target.table(table)}"  # noqa: S608 (quoted by the test's dialect)
        count = conn.exec_driver_sql(sql).scalar() if target.admin else conn.execute(sql).fetchone()[0]
    assert count == 3


def test_every_page_renders_a_table_with_every_kind_of_column(client, admin, target):  # noqa: F811
    from tests.explorer_fixtures import typed_table

    info = typed_table(target)
    values = {"sqlite": "(1, 5, 9007199254740993, 12.5, 1.5, 1, '2024-02-29', '13:05:09', '2024-02-29 13:05:09', "
                        "'short', 'long text', '{\"a\": [1, 2]}', 'red', X'00FF', 7, 'required')"}
    if target.kind == "sqlite":
        target.run(f"INSERT INTO typed VALUES {values['sqlite']}")  # noqa: S608
    else:
        target.run(f"INSERT INTO {target.table('typed')} (req, j, d, dt) "  # noqa: S608
                   "VALUES ('required', '{\"a\": [1, 2]}', 12.5, '2024-02-29 13:05:09')")
    login(client, admin.username)
    base = {"t": info.name, **({"s": target.schema} if target.schema else {})}
    listing = client.get(f"/db/{target.connection.pk}/table/?" + urlencode(base))
    assert listing.status_code == 200
    token = unescape(re.search(r'name="k" value="([^"]+)"', listing.content.decode()).group(1))
    for page in ("row/", "row/edit/", "row/delete/", "changes/"):
        response = client.get(f"/db/{target.connection.pk}/{page}?" + urlencode({**base, "k": token}))
        assert response.status_code == 200, (page, response.content[:500])
    row = client.get(f"/db/{target.connection.pk}/row/?" + urlencode({**base, "k": token})).content.decode()
    assert '<pre class="json">' in row and "required" in row
    edit = f"/db/{target.connection.pk}/row/edit/?" + urlencode({**base, "k": token})
    form = client.get(edit).content.decode()
    data = form_data(form)
    data[field_name(form, "req")] = "changed"
    response = client.post(edit, data)
    assert response.status_code == 302, re.findall(r'errorlist[^>]*><li>([^<]+)', response.content.decode())
    assert client.get(f"/db/{target.connection.pk}/?" + urlencode(
        {"s": target.schema} if target.schema else {})).status_code == 200
