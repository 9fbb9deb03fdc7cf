"""schemathesis hooks for tests/tests/schemathesis.rs (loaded through SCHEMATHESIS_HOOKS).

One check replaces schemathesis' `positive_data_acceptance` (which the test excludes):
the same check, except that a schema-valid request may be refused with one of the
(status, error code) pairs below, which no JSON Schema can rule out:

- 400 with a code about what binary fields carry: a field's base64 can be exactly what
  the document asks for and still not decode to an MLS message, a KeyPackage, or one for
  the group in the path.
- 421 `not_hubbed_here` (federation API): the group id is well formed but its hub is
  another server; which server a document is served by is not part of the document.

Any other refusal of a schema-valid request (`bad_json`, `invalid_param`, ...) is a
failure: the document must say precisely what the server takes.
"""

import json

import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi.checks import positive_data_acceptance as builtin

# (status, code) pairs a schema-valid request may get (see specs/protocol.md's error table).
BEYOND_SCHEMA = frozenset(
    {
        (400, "invalid_mls_message"),
        (400, "invalid_key_package"),
        (400, "group_mismatch"),
        (421, "not_hubbed_here"),
    }
)


def _error_code(response):
    try:
        body = json.loads(response.content)
    except (ValueError, TypeError):
        return None
    return body.get("error") if isinstance(body, dict) else None


@schemathesis.check
def positive_data_acceptance_beyond_schema(ctx, response, case):
    try:
        return builtin(ctx, response, case)
    except Failure:
        if (response.status_code, _error_code(response)) in BEYOND_SCHEMA:
            return None
        raise
