"""The web console: JSON endpoints under /api/ and a static page, served on the broker's HTTP port next
to /metrics (see docs/console.md).

`api` translates HTTP requests to the broker's domain and back, and nothing else (`translate` checks
query parameters and bodies); `guard` adds the security headers and the anti-CSRF check and turns errors
into JSON through `errors`, the one table from error classes to HTTP statuses; `permissions.may` is the single permission check; `samples` is
the pure ring buffer of rate samples behind the live charts, and `sampler` the task that feeds it;
`records` renders untrusted record bytes as JSON-safe text.
"""

from __future__ import annotations

from logstore.broker.console.api import Console

__all__ = ["Console"]
