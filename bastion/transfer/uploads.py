"""Uploaded import files: the size limit while they arrive, where they are kept, and the signed ticket that
names one for its uploader (T24, T28).

Django streams an upload larger than FILE_UPLOAD_MAX_MEMORY_SIZE into a file made by ``tempfile`` (never
``mktemp``) in FILE_UPLOAD_TEMP_DIR, which is a folder of the data directory, so keeping the file is a rename
into the jobs folder. ``SizeLimit`` comes first among the upload handlers: past BASTION_IMPORT_MAX_MB it stops
reading the body, and the view says why instead of seeing no file. The handlers serve every request, so that
limit is for signed-in users only: anyone else's files stop at the request body limit
(DATA_UPLOAD_MAX_MEMORY_SIZE), nothing larger is spooled to disk for them. The ticket carried by the preview page's
URL is signed and names its user and connection, so nobody can point an import at someone else's file; it feeds
one job only. A user keeps at most WAITING_MAX uploads waiting for an import (a newer one removes the oldest).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.files.move import file_move_safe
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

from bastion.jobs.models import Job
from bastion.jobs.services import delete_file, job_path, jobs_dir, new_job_file

TICKET_SALT = "bastion.transfer.upload"
TICKET_MAX_AGE = 24 * 3600
WAITING_MAX = 3  # uploads one user keeps waiting for an import; a newer one removes the oldest (T28: disk)
TOO_LARGE = "too_large"


class SizeLimit(FileUploadHandler):
    """Stops an upload whose files pass BASTION_IMPORT_MAX_MB (a signed-in user's) or the request body limit (anyone
    else's), and marks the request so the view can say so."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0
        self.limit: int | None = None

    def _limit(self) -> int:
        if self.limit is None:
            user = getattr(self.request, "user", None)
            signed_in = user is not None and user.is_authenticated
            body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            self.limit = (settings.IMPORT_MAX_BYTES if signed_in or body is None
                          else min(body, settings.IMPORT_MAX_BYTES))
        return self.limit

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        jobs_dir()  # the temporary file's folder (FILE_UPLOAD_TEMP_DIR) exists before the next handler needs it

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self._limit():
            if self.request is not None:
                self.request.META["bastion.upload"] = TOO_LARGE
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers keep the file


def too_large(request: HttpRequest) -> bool:
    return request.META.get("bastion.upload") == TOO_LARGE


@dataclass(frozen=True)
class Upload:
    """A kept upload: whose, for which connection, the stored file's name and what the user called it."""

    user: int
    connection: int
    file_name: str
    original_name: str
    size: int

    def ticket(self) -> str:
        return signing.dumps(asdict(self), salt=TICKET_SALT, compress=True)

    @property
    def path(self) -> Any:
        return job_path(self.file_name)


def keep(uploaded: UploadedFile, user: Any, connection_id: int) -> Upload:
    """Move ``uploaded`` into the jobs folder (a rename: same file system) and describe it."""
    name, path = new_job_file()
    temporary = getattr(uploaded, "temporary_file_path", None)
    if temporary is not None:  # Django's own close() afterwards finds the file moved, and says nothing
        file_move_safe(temporary(), str(path), allow_overwrite=True)
    else:  # small files arrive in memory
        with path.open("wb") as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
    original = (uploaded.name or "upload")[:200]
    _keep_few(user, name)
    return Upload(user.pk, connection_id, name, original, path.stat().st_size)


def _keep_few(user: Any, newest: str) -> None:
    """At most WAITING_MAX of the user's uploads wait for an import: each may be BASTION_IMPORT_MAX_MB, and one not
    imported is otherwise kept for a day (the shared cache remembers them; a job's file is the job's)."""
    key = f"bastion:import-uploads:{user.pk}"
    remembered = cache.get(key, [])
    taken = set(Job.objects.filter(file_name__in=remembered).values_list("file_name", flat=True))
    waiting = [n for n in remembered if n not in taken and job_path(n).is_file()]
    excess = max(0, len(waiting) + 1 - WAITING_MAX)
    for name in waiting[:excess]:
        delete_file(name)
    cache.set(key, [*waiting[excess:], newest], timeout=TICKET_MAX_AGE)


class TicketRefused(Exception):
    """The ticket is not one of this user's uploads for this connection (forged, expired, or the file is gone)."""


def from_ticket(ticket: str, user: Any, connection_id: int) -> Upload:
    try:
        claims = signing.loads(ticket, salt=TICKET_SALT, max_age=TICKET_MAX_AGE)
        upload = Upload(**claims)
    except (signing.BadSignature, TypeError):
        raise TicketRefused("This upload is not available any more: upload the file again.") from None
    if upload.user != user.pk or upload.connection != connection_id or not upload.path.is_file():
        raise TicketRefused("This upload is not available any more: upload the file again.")
    if Job.objects.filter(file_name=upload.file_name).exists():  # one upload feeds one job (a double "Start")
        raise TicketRefused("This upload was already imported (or is being imported): see Jobs, or upload the "
                            "file again.")
    return upload
