# SPDX-License-Identifier: MIT
"""The e2e test app: the demo app (examples/app.py) plus test-only endpoints.

    /usr/bin/python3 -m uvicorn app_e2e:app --app-dir tests/e2e --port PORT
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))

from app import app  # noqa: E402


@app.get("/whoami")
async def whoami():
    """The pid of the worker process that served this request."""
    return {"pid": os.getpid()}
