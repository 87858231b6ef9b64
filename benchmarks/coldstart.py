"""One cold start: build the service and its whole decision engine from the database, then print
seconds and peak RSS as JSON. Run in a fresh process by run.py."""

import json
import sys
import time
from pathlib import Path

start = time.perf_counter()
from authz_service.config import load_settings  # noqa: E402
from authz_service.service import Service  # noqa: E402

service = Service(load_settings({"database_url": sys.argv[1], "poll_interval": 0, "notify": "off"}))
assert service.sync(), service.last_error
snapshot = service.engine.snapshot
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a big parent would report the
# parent's size
status = Path("/proc/self/status").read_text().splitlines()
peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "rss_mb": peak_kb / 1024,
    "cpas": len(snapshot.policies),
}))
