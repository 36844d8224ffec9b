"""gunicorn's logs without the secrets of emailed links (they are in paths: `/bookings/<token>/`,
a staff invitation's `/accounts/password/reset/key/<key>/`): its access log, and its error log,
which names the request when handling it fails.

`gunicorn --logger-class mindsettler.access_log.RedactingLogger ...` (docs/deployment.md).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from mindsettler.logging import RequestIDFilter, redact


class RedactingLogger(Logger):
    # The request line, the path, and the referrer (a page of ours, link and all).
    REDACTED = ("r", "U", "f", "{referer}i")

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # "Error handling request /bookings/<token>/": the app's own filter, as on its lines.
        if not any(isinstance(f, RequestIDFilter) for f in self.error_log.filters):
            self.error_log.addFilter(RequestIDFilter())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in self.REDACTED:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
