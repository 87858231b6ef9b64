"""One cold start: build the service and its whole decision engine from the database, then print
seconds and peak RSS as JSON. Run in a fresh process by run.py."""

import json
import resource
import sys
import time

start = time.perf_counter()
from authz_service.config import load_settings  # noqa: E402
from authz_service.service import Service  # noqa: E402

service = Service(load_settings({"database_url": sys.argv[1], "poll_interval": 0, "notify": "off"}))
assert service.sync(), service.last_error
snapshot = service.engine.snapshot
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "cpas": len(snapshot.policies),
}))
