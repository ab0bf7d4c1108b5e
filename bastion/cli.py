"""The `bastion` command: init, serve, worker, check, createadmin, import-users, migrate-hashes, audit verify,
config, manage."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from bastion import config

CLIENT_ENV_PREFIXES = ("PG", "MYSQL_", "LIBMYSQL_")
DEV_WARNING = (
    "!" * 72 + "\n"
    "!! DEVELOPMENT MODE (BASTION_DEV=1): HTTPS, HSTS and secure cookies are OFF.\n"
    "!! Never let anybody but yourself reach this server.\n" + "!" * 72
)


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    import django

    django.setup()


def _read_password_file(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").rstrip("\r\n")


# --- init -----------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from bastion.datadir import Layout, ensure_keys, make_private_dir, write_private_file
    from bastion.tls import make_self_signed

    conf = config.load()
    layout = Layout(Path(conf["data_dir"]))
    created = ensure_keys(layout)
    if not layout.tls_cert.exists() and not conf["tls_cert"]:
        make_self_signed(layout.tls_cert, layout.tls_key, ["localhost", "127.0.0.1", "::1"])
        created.append(str(layout.tls_cert))
    layout.mail_dir.mkdir(mode=0o700, exist_ok=True)
    if make_private_dir(layout.jobs_dir):  # background jobs' files; also where large uploads arrive
        created.append(str(layout.jobs_dir))

    _setup_django()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from bastion.accounts.services import create_admin
    from bastion.connections.demo import register_demo

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    call_command("migrate", interactive=False, verbosity=0)
    call_command("createcachetable", verbosity=0)
    if pending:
        created.append(f"metadata database ({len(pending)} migrations applied)")

    demo = None if args.no_demo else register_demo()
    if demo is not None:
        created.append(f"demo database {demo.sqlite_path} (registered as {demo.name!r})")

    admin = None
    if not get_user_model().objects.filter(is_superuser=True).exists():
        password = _read_password_file(args.admin_password_file) if args.admin_password_file else None
        admin = create_admin(args.admin_user, password)
        created.append(f"administrator {admin.username!r}")

    if not created:
        print(f"Bastion is already initialised in {layout.root}; nothing changed.")
        return 0
    print(f"Initialised Bastion in {layout.root}:")
    for item in created:
        print(f"  created {item}")
    if admin and admin.one_time:
        if args.one_time_password_file:
            write_private_file(Path(args.one_time_password_file), admin.password.encode() + b"\n")
            print(f"\nOne-time password for {admin.username!r} written to {args.one_time_password_file}.")
        else:
            print("\n" + "=" * 64)
            print(f"  Administrator: {admin.username}")
            print(f"  One-time password: {admin.password}")
            print("  It is shown only now; you must change it at first sign-in.")
            print("=" * 64)
    return 0


# --- check --------------------------------------------------------------------------------
def run_checks() -> bool:
    """Django's deployment checks plus Bastion's own; True when nothing is wrong."""
    _setup_django()
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    try:
        call_command("check", deploy=True, fail_level="WARNING")
    except SystemCheckError as exc:
        print(exc, file=sys.stderr)
        return False
    return True


def cmd_check(args: argparse.Namespace) -> int:
    if config.load()["dev"]:
        print(DEV_WARNING, file=sys.stderr)
    ok = run_checks()
    from bastion.console.checks import target_privilege_warnings

    for warning in target_privilege_warnings():
        print(f"WARNING: {warning}", file=sys.stderr)
        ok = False
    print("All checks passed." if ok else "Fix the problems above, then run `bastion check` again.")
    return 0 if ok else 1


# --- serve ------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from bastion.datadir import Layout, make_private_dir

    conf = config.load()
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and not args.allow_root:
        print("Refusing to run as root: a compromise of the server would own the machine. "
              "Run as an unprivileged user, or pass --allow-root.", file=sys.stderr)
        return 2
    if is_root:
        os.environ["BASTION_ALLOW_ROOT"] = "1"
        print("WARNING: running as root because --allow-root was given.", file=sys.stderr)
    layout = Layout(Path(conf["data_dir"]))
    if not layout.secret_key.exists() and not conf["secret_key"]:
        print(f"{layout.root} is not initialised: run `bastion init` first.", file=sys.stderr)
        return 2
    make_private_dir(layout.jobs_dir)  # a data directory from before jobs existed gets its folder (uploads land there)
    if conf["dev"]:
        print(DEV_WARNING, file=sys.stderr)
        run_checks()
    elif not run_checks():
        print("Refusing to start in production mode while `bastion check` fails.", file=sys.stderr)
        return 1

    host = args.host or conf["host"]
    port = args.port or conf["port"]
    cert = args.cert or conf["tls_cert"] or str(layout.tls_cert)
    key = args.key or conf["tls_key"] or str(layout.tls_key)
    plain = conf["dev"] and args.plain_http
    argv = [sys.executable, "-I", "-m", "bastion.server", "--host", host, "--port", str(port),
            "--workers", str(args.workers or conf["workers"]), "--proxy-count", str(conf["proxy_count"])]
    redirect_port = args.http_redirect_port or conf["http_redirect_port"]
    if plain:
        argv.append("--plain-http")
    else:
        argv += ["--cert", cert, "--key", key]
        if redirect_port:
            argv += ["--http-redirect-port", str(redirect_port), "--site-url", conf["site_url"]]
    if conf["embedded_worker"]:
        argv.append("--jobs-worker")
    scheme = "http" if plain else "https"
    shown = f"[{host}]" if ":" in host else host
    print(f"Bastion is serving {scheme}://{shown}:{port}/ (stop with Ctrl+C)", flush=True)
    # Database client libraries read defaults (passwords, service files, hosts) from
    # the environment; a target connection must use only what its settings say.
    environment = {k: v for k, v in os.environ.items() if not k.startswith(CLIENT_ENV_PREFIXES)}
    # Isolated mode (-I) needs a fresh interpreter, so exec one (list args, no shell).
    os.execve(sys.executable, argv, environment)  # noqa: S606
    return 0  # pragma: no cover


# --- worker ---------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    """Run background jobs (imports, exports) apart from `bastion serve` (BASTION_EMBEDDED_WORKER=0 there)."""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and not (args.allow_root or os.environ.get("BASTION_ALLOW_ROOT")):
        print("Refusing to run as root: run as an unprivileged user, or pass --allow-root.", file=sys.stderr)
        return 2
    if not sys.flags.isolated:
        # As `serve` does: a fresh interpreter in isolated mode (no PYTHONPATH, no user site-packages, no current
        # directory on sys.path; T44) runs the worker. List arguments, no shell.
        os.execv(sys.executable, [sys.executable, "-I", "-m", "bastion.cli", *sys.argv[1:]])  # noqa: S606
    _setup_django()
    from bastion.jobs import worker

    if not worker.uses_database_queue() and not args.sweep_only:
        print("The task backend is not the database queue: run that backend's own worker for the tasks. "
              "This worker only sweeps (interrupted jobs, expired files).", file=sys.stderr)
    return worker.run(parent=args.parent, interval=args.interval, sweep_only=args.sweep_only)


# --- rotate-keys --------------------------------------------------------------------------
def cmd_rotate_keys(args: argparse.Namespace) -> int:
    """New encryption key; every stored secret re-encrypted; the old key dropped when done (T30).

    Crash-safe: the key file holds [new, old] while re-encrypting, so every
    token stays readable whatever step is interrupted.
    """
    if config.load()["encryption_keys"]:
        if args.reencrypt_only:
            return _reencrypt()
        print("The encryption keys come from BASTION_ENCRYPTION_KEYS, which this command cannot change.\n"
              "Generate a key with `python -c 'from cryptography.fernet import Fernet; "
              "print(Fernet.generate_key().decode())'`, set BASTION_ENCRYPTION_KEYS=new,old, restart, run "
              "`bastion rotate-keys --reencrypt-only`, then drop the old key.", file=sys.stderr)
        return 2
    _setup_django()
    from cryptography.fernet import Fernet
    from django.conf import settings

    from bastion.connections.crypto import rotate_all
    from bastion.datadir import replace_private_file

    new_key = Fernet.generate_key().decode("ascii")
    keys = [new_key, *settings.ENCRYPTION_KEYS]
    path = settings.DATA.encryption_keys
    replace_private_file(path, (",".join(keys) + "\n").encode("ascii"))
    count = rotate_all(keys=keys)
    replace_private_file(path, (new_key + "\n").encode("ascii"))
    settings.ENCRYPTION_KEYS = [new_key]
    print(f"Re-encrypted {count} stored secret(s) with a new key; the old key is gone from {path}.\n"
          "Restart running Bastion servers so they load the new key.")
    return 0


def _reencrypt() -> int:
    _setup_django()
    from bastion.connections.crypto import rotate_all

    print(f"Re-encrypted {rotate_all()} stored secret(s) with the newest key.")
    return 0


# --- createadmin, audit, config, manage ----------------------------------------------
def cmd_createadmin(args: argparse.Namespace) -> int:
    _setup_django()
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError

    from bastion.accounts.services import create_admin

    password = _read_password_file(args.password_file) if args.password_file else None
    try:
        admin = create_admin(args.username, password)
    except ValidationError as exc:
        print("Password refused: " + " ".join(exc.messages), file=sys.stderr)
        return 1
    except IntegrityError:
        print(f"A user named {args.username!r} already exists.", file=sys.stderr)
        return 1
    print(f"Created administrator {admin.username!r}.")
    if admin.one_time:
        print(f"One-time password (shown once, must be changed at first sign-in): {admin.password}")
    return 0


# --- import-users, migrate-hashes (T12) ---------------------------------------------------
class ProgressBar:
    """Progress on stderr: a bar redrawn in place on a terminal, otherwise a plain line at every tenth."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.tenth = -1

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)

    def show(self, fraction: float, text: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if self.tty:
            filled = int(fraction * self.WIDTH)
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:4.0%} {text}\033[K")
            self.stream.flush()
        elif int(fraction * 10) > self.tenth:
            self.tenth = int(fraction * 10)
            print(f"{fraction:4.0%} {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def cmd_import_users(args: argparse.Namespace) -> int:
    _setup_django()
    from bastion.accounts.legacy_import import ImportRefused, import_users
    from bastion.accounts.legacy_migrate import weak_hash_users

    path = Path(args.file)
    if not path.is_file():
        print(f"No such file: {path}", file=sys.stderr)
        return 2
    bar = ProgressBar()
    try:
        result = import_users(path, skip_existing=args.skip_existing, default_format=args.format.lower(),
                              on_progress=lambda rows, fraction: bar.show(fraction, f"{rows:,} rows read"))
    except ImportRefused as exc:
        bar.close()
        print(f"Nothing was imported: {path.name} was refused.", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    bar.close()
    formats = ", ".join(f"{count:,} {fmt}" for fmt, count in sorted(result.formats.items()))
    skipped = f"; {result.skipped:,} existing user(s) skipped" if result.skipped else ""
    print(f"Imported {result.created:,} user(s) in {result.seconds:.1f} s ({formats or 'none'}){skipped}.")
    if weak_hash_users().exists():
        print("Users keep their passwords. Their MD5/SHA1 hashes are weak: run `bastion migrate-hashes` now.")
    return 0


def cmd_migrate_hashes(args: argparse.Namespace) -> int:
    _setup_django()
    from bastion.accounts.legacy_migrate import migrate_hashes

    bar = ProgressBar()

    def progress(done: int, total: int) -> None:
        bar.show(done / total, f"{done:,}/{total:,} hashes, {done / bar.elapsed():.1f} users/s")

    try:
        result = migrate_hashes(batch_size=args.batch_size, limit=args.limit, on_progress=progress)
    except KeyboardInterrupt:
        bar.close()
        print("Interrupted: the finished batches are kept. Run `bastion migrate-hashes` again to go on.",
              file=sys.stderr)
        return 130
    bar.close()
    if not (result.wrapped or result.skipped):
        print("No MD5/SHA1 hash is left to wrap.")
        return 0
    print(f"Wrapped {result.wrapped:,} MD5/SHA1 hash(es) in Argon2id in {result.seconds:.1f} s "
          f"({result.wrapped / max(result.seconds, 1e-6):.1f} users/s); {result.remaining:,} left.")
    if result.skipped:
        print(f"{result.skipped:,} hash(es) could not be wrapped: malformed, or changed while the command ran. "
              "Run the command again; reset the password of any user still listed by `bastion check`.")
    elif result.remaining:
        print("Run `bastion migrate-hashes` again to wrap the rest.")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def cmd_audit_verify(args: argparse.Namespace) -> int:
    _setup_django()
    from bastion.audit.chain import verify_chain
    from bastion.audit.integrity import verify_snapshots
    from bastion.audit.models import AuditEvent

    report = verify_chain(AuditEvent.objects.order_by("seq").iterator(chunk_size=2000))
    if not report.ok:
        print(f"Audit chain BROKEN at event #{report.broken_seq}: {report.problem} "
              f"({report.checked} events before it verified).", file=sys.stderr)
        return 1
    snapshots = verify_snapshots()  # checked against the events' details, which the chain just vouched for
    if not snapshots.ok:
        print(f"Audit chain BROKEN at event #{snapshots.broken_seq}: {snapshots.problem} "
              f"({report.checked} events and {snapshots.checked} table snapshots before it verified).",
              file=sys.stderr)
        return 1
    print(f"Audit chain OK: {report.checked} events verified, and {snapshots.checked} table snapshots.")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(config.markdown_table())
    return 0


def cmd_manage(args: argparse.Namespace) -> int:
    _setup_django()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["bastion manage", *args.arguments])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bastion", description="Bastion, a security-first SQL web console.")
    parser.add_argument("--data-dir", help="data directory (default ./var, or BASTION_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create the data directory, keys, certificate, database and first admin")
    p.add_argument("--data-dir", dest="data_dir_sub", help=argparse.SUPPRESS)
    p.add_argument("--admin-user", default="admin")
    p.add_argument("--admin-password-file", help="file holding the admin's password (else a one-time one)")
    p.add_argument("--one-time-password-file", help="write the generated one-time password here (mode 0600)")
    p.add_argument("--no-demo", action="store_true", help="do not create and register the demo database")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="serve Bastion over HTTPS with a production server")
    p.add_argument("--data-dir", dest="data_dir_sub", help=argparse.SUPPRESS)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--allow-root", action="store_true")
    p.add_argument("--plain-http", action="store_true", help="development mode only")
    p.add_argument("--http-redirect-port", type=int, help="also redirect plain HTTP on this port to HTTPS")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the background-job worker (imports, exports) apart from the server")
    p.add_argument("--data-dir", dest="data_dir_sub", help=argparse.SUPPRESS)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between looks at an empty queue")
    p.add_argument("--sweep-only", action="store_true",
                   help="only mark interrupted jobs failed and delete expired files (another backend's worker "
                        "runs the tasks)")
    p.add_argument("--allow-root", action="store_true")
    p.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # set by `bastion serve`: stop with it
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("check", help="check the configuration for production (non-zero exit on problems)")
    p.add_argument("--data-dir", dest="data_dir_sub", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("createadmin", help="create another administrator")
    p.add_argument("username")
    p.add_argument("--password-file")
    p.set_defaults(func=cmd_createadmin)

    p = sub.add_parser("import-users", help="import users with their password hashes from an older system")
    p.add_argument("file", help="a .csv file (header line) or .json file (array of objects); see the README")
    p.add_argument("--format", default="", help="hash format for rows without a format field "
                   "(md5, sha1, salted_md5, salted_sha1, bcrypt, django)")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave users that exist already as they are (default: refuse the file)")
    p.set_defaults(func=cmd_import_users)

    p = sub.add_parser("migrate-hashes", help="wrap every MD5/SHA1 password hash in Argon2id, without the passwords")
    p.add_argument("--batch-size", type=_positive, default=500, help="hashes per transaction (default 500)")
    p.add_argument("--limit", type=_positive, help="stop after this many hashes (run again to go on)")
    p.set_defaults(func=cmd_migrate_hashes)

    p = sub.add_parser("audit", help="audit log tools")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="verify the audit hash chain and the dropped tables' snapshots")
    v.set_defaults(func=cmd_audit_verify)

    p = sub.add_parser("rotate-keys", help="new encryption key for secrets at rest; re-encrypts every secret")
    p.add_argument("--reencrypt-only", action="store_true",
                   help="keys from BASTION_ENCRYPTION_KEYS: only re-encrypt with the newest one")
    p.set_defaults(func=cmd_rotate_keys)

    p = sub.add_parser("config", help="print the settings table (markdown)")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("manage", help="run a Django management command")
    p.add_argument("arguments", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_manage)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # everything Bastion creates (database, keys, e-mails) is private
    args = build_parser().parse_args(argv)
    data_dir = getattr(args, "data_dir_sub", None) or args.data_dir
    if data_dir:
        os.environ["BASTION_DATA_DIR"] = data_dir
    try:
        return args.func(args)
    except config.ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
