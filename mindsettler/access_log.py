"""gunicorn's access log without the secrets of emailed links (they are in paths:
`/bookings/<token>/`, a staff invitation's `/accounts/password/reset/key/<key>/`).

`gunicorn --logger-class mindsettler.access_log.AccessLogger ...` (docs/deployment.md).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from mindsettler.logging import redact


class AccessLogger(Logger):
    # The request line, the path, and the referrer (a page of ours, link and all).
    REDACTED = ("r", "U", "f", "{referer}i")

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in self.REDACTED:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
