"""schemathesis hooks for tests/tests/schemathesis.rs (loaded through SCHEMATHESIS_HOOKS).

One check replaces schemathesis' `positive_data_acceptance` (which the test excludes):
the same check, except that a schema-valid request may be refused with one of the
(status, error code) pairs below, which no JSON Schema can rule out:

- 400 with a code about what binary fields carry: a field's base64 can be exactly what
  the document asks for and still not decode to an MLS message, a KeyPackage, or one for
  the group in the path.
- 421 `not_hubbed_here` (federation API): the group id is well formed but its hub is
  another server; which server a document is served by is not part of the document.
- 413 `file_too_large` and 507 `quota_exceeded`: an upload's size within the document's
  range but over what this server is configured to take (`[files]`, `[key_backup]`).
- 400 `bad_json`/`invalid_param` for a user or group id whose server name is longer than
  253 characters: the documents say so, and their patterns check every label, but a
  pattern cannot bound the length of one part of a string without a lookahead, which
  the generator handles too slowly for a bounded run.

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
        (413, "file_too_large"),
        (507, "quota_exceeded"),
    }
)


MAX_SERVER_NAME = 253


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _names_a_too_long_server(case):
    for part in (case.path_parameters, case.query, case.body):
        for text in _strings(part):
            if "@" in text and len(text.rsplit("@", 1)[1]) > MAX_SERVER_NAME:
                return True
    return False


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
        code = _error_code(response)
        if (response.status_code, code) in BEYOND_SCHEMA:
            return None
        if response.status_code == 400 and code in ("bad_json", "invalid_param") and _names_a_too_long_server(case):
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
