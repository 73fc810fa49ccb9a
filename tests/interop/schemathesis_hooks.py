"""Schemathesis hooks of tests/api_schemathesis.rs.

Remote write's bodies (application/x-protobuf, snappy-compressed) are
binary: they are sent as the bytes schemathesis generates, as it sends
application/octet-stream bodies, so the receiver meets arbitrary bytes.
"""

import schemathesis

schemathesis.serializer.alias("application/x-protobuf", "application/octet-stream")
