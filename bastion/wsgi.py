"""WSGI entry point for the production server."""

import faulthandler
import os

from django.core.wsgi import get_wsgi_application

faulthandler.enable()  # T43: a hard crash still leaves a Python traceback on stderr
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
application = get_wsgi_application()
