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


# The inbox long poll waits up to `timeout_ms` (at most 30 000) for an entry. Valid
# timeouts above half a second are shortened to half a second, so that a bounded run
# does not spend its time waiting (and schemathesis' 10 s response-time check holds);
# invalid ones (negative, above 30 000, not numbers) are left as generated.
LONG_POLL_CAP_MS = 500


def _capped(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and LONG_POLL_CAP_MS < value <= 30_000:
        return LONG_POLL_CAP_MS
    if isinstance(value, str) and value.isascii() and value.isdigit() and LONG_POLL_CAP_MS < int(value) <= 30_000:
        return str(LONG_POLL_CAP_MS)
    return value


@schemathesis.hook
def before_call(context, case, kwargs):
    # Every phase's requests pass here (schemathesis revalidates the case after).
    if case.operation.path == "/client/v1/inbox" and isinstance(case.query, dict) and "timeout_ms" in case.query:
        case.query["timeout_ms"] = _capped(case.query["timeout_ms"])
