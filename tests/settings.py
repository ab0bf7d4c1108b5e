"""Test settings: Bastion's production settings, with a throw-away data directory.

Only what a test machine needs differs: a temporary data dir with fresh keys,
and 'testserver' (Django's test client host) among the allowed hosts. Set
BASTION_TEST_METADATA_DB=postgresql to run against the PostgreSQL test server.
"""

import os
import tempfile
from pathlib import Path

from bastion.datadir import Layout, ensure_keys, make_private_dir

for _name in [n for n in os.environ if n.startswith("BASTION_") and not n.startswith("BASTION_TEST_")]:
    del os.environ[_name]  # a developer's own BASTION_* settings must not change what tests prove

_data = Path(tempfile.mkdtemp(prefix="bastion-test-"))
os.environ["BASTION_DATA_DIR"] = str(_data)
os.environ["BASTION_ALLOWED_HOSTS"] = "localhost,127.0.0.1,testserver"
if os.environ.get("BASTION_TEST_METADATA_DB") == "postgresql":
    os.environ.update(BASTION_DB_ENGINE="postgresql", BASTION_DB_NAME="bastion",
                      BASTION_DB_HOST="127.0.0.1", BASTION_DB_PORT="5432",
                      BASTION_DB_USER=os.environ.get("BASTION_TEST_PG_USER", "postgres"))
ensure_keys(Layout(_data))
make_private_dir(Layout(_data).jobs_dir)  # FILE_UPLOAD_TEMP_DIR, as `bastion init` makes it

from bastion.settings import *  # noqa: E402,F403
