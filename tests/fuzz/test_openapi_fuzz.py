"""schemathesis against the backend's OpenAPI schema: every operation, two ways.

* **Directly** against the backend (gunicorn), with no credentials: public operations must
  behave as documented; operations that need the caller's identity answer 401 (the
  gateway's assertion is missing), which the schema documents.
* **Through the harness gateway** (the repository's kong.yml, edge-jwt) with a real access
  token of a user who registered, verified and signed in through the API: protected
  operations are exercised past authentication.

Checks (schemathesis's own, plus one of ours): no 5xx; status codes, content types,
headers and bodies as documented; schema-violating input rejected; schema-valid input
accepted. "Accepted" allows a 400 only with a code the operation documents for its
business rules (an unknown verification code is schema-valid and still refused), never
``invalid`` (the schema would have lied about what the serializers enforce), except for
the password rules a JSON schema cannot state (common passwords, likeness to the email).

``FUZZ_MAX_EXAMPLES`` bounds the generated cases per operation and mode (default below;
the whole set then runs in about a minute on the CI machine). Generation is derandomized:
a failure reproduces on the next run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    is_unexpected_http_status_case,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.backend import PASSWORD, Backend, User
from tests.support.harness import HarnessRunner

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# The fields whose 400 `invalid` answers to schema-valid input can be the password rules.
PASSWORD_FIELDS = {"register": {"password"}, "password_reset_confirm": {"new_password"}}

# Every operation the fuzz tests sent cases to, per way in ("direct", "gateway").
FUZZED: dict[str, set[str]] = {"direct": set(), "gateway": set()}


class SchemaValidInputRefused(Failure):
    """A schema-valid request answered 400 with a code its operation does not document."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(
            operation=operation,
            title="Schema-valid input refused as invalid",
            message=message,
        )

    @property
    def _unique_key(self) -> str:
        return self.message


def _documented_error_codes(case: Any, status: str) -> set[str]:
    response = case.operation.definition.raw.get("responses", {}).get(status, {})
    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
    return {example["value"]["error"]["code"] for example in examples.values()}


def valid_input_refused_only_by_documented_rules(
    ctx: CheckContext, response: Any, case: Any
) -> bool | None:
    """Our refinement of ``positive_data_acceptance`` (which is told to allow 400)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if response.status_code != 400 or is_unexpected_http_status_case(case):
        return None
    error = response.json()["error"]
    operation_id = case.operation.definition.raw.get("operationId", "")
    code = error["code"]
    if code == "invalid":
        fields = set(error["details"].get("fields", {}))
        if fields and fields <= PASSWORD_FIELDS.get(operation_id, set()):
            return None
        raise SchemaValidInputRefused(
            case.operation.label, f"400 `invalid` for schema-valid input: {error['details']}"
        )
    documented = _documented_error_codes(case, "400") - {"invalid"}
    if code not in documented:
        raise SchemaValidInputRefused(
            case.operation.label,
            f"400 `{code}` for schema-valid input; documented: {sorted(documented)}",
        )
    return None


CHECKS: list[Callable[..., bool | None]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]


def fuzz_config(*, with_credentials: bool) -> SchemathesisConfig:
    """``with_credentials``: whether requests carry the access token, so that schemathesis
    may also send requests without it (directly, the backend never sees the token: the
    gateway checks it)."""
    return SchemathesisConfig.from_dict(
        {
            "generation": {"with-security-parameters": with_credentials},
            # The coverage phase (boundary values of every constraint) where a way in reaches
            # the operation's validation: public operations directly, protected ones through
            # the gateway. Random cases (the fuzzing phase) go to every operation both ways.
            "operations": [
                {
                    "include-by": ("/security == " if not with_credentials else "/security != ")
                    + json.dumps([{"AccessToken": []}]),
                    "phases": {"coverage": {"enabled": False}},
                }
            ],
            "checks": {
                # 400 is judged by valid_input_refused_only_by_documented_rules.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
                },
            },
        }
    )


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    # No shrinking: a failure is reported as found (derandomized, so it comes back).
    phases=[Phase.explicit, Phase.generate],
)


def requires_identity(case: Any) -> bool:
    security = case.operation.definition.raw.get("security", [])
    return bool(security) and {} not in security


@pytest.fixture(scope="session")
def direct_schema(fuzz_backend: Backend) -> Any:
    return schemathesis.openapi.from_url(
        f"{fuzz_backend.url}/api/auth/schema/?format=json",
        config=fuzz_config(with_credentials=False),
    )


@pytest.fixture(scope="session")
def gateway_schema(fuzz_gateway: HarnessRunner) -> Any:
    return schemathesis.openapi.from_url(
        f"{fuzz_gateway.url}/api/auth/schema/?format=json",
        config=fuzz_config(with_credentials=True),
    )


direct = schemathesis.pytest.from_fixture("direct_schema")
via_gateway = schemathesis.pytest.from_fixture("gateway_schema")


@direct.parametrize()
@FUZZ_SETTINGS
def test_backend_directly(case: Any) -> None:
    FUZZED["direct"].add(case.operation.label)
    if not requires_identity(case):
        case.call_and_validate(
            checks=CHECKS, additional_checks=[valid_input_refused_only_by_documented_rules]
        )
        return
    # No gateway, no assertion, no identity: such a request is not schema-valid (its
    # security requirement is unmet), so only the other checks apply.
    response = case.call_and_validate(
        checks=[check for check in CHECKS if check is not positive_data_acceptance]
    )
    if case.operation.definition.raw["operationId"] != "logout":  # also takes a refresh token
        assert response.status_code == 401, (case.operation.label, response.text)


@via_gateway.parametrize()
@FUZZ_SETTINGS
def test_through_the_gateway(case: Any, fuzz_gateway: HarnessRunner, fuzz_user: User) -> None:
    FUZZED["gateway"].add(case.operation.label)
    token = fuzz_user.access_token
    if case.operation.definition.raw["operationId"] == "logout":
        # Logging out ends the token's session: give each case a session of its own.
        token = _sign_in(fuzz_gateway, fuzz_user.email)
    headers = {"Authorization": f"Bearer {token}"} if requires_identity(case) else None
    case.call_and_validate(
        headers=headers,
        checks=CHECKS,
        additional_checks=[valid_input_refused_only_by_documented_rules],
    )


def _sign_in(gateway: HarnessRunner, email: str) -> str:
    response = httpx.post(
        f"{gateway.url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_every_operation_was_fuzzed_both_ways(public_schema_document: dict) -> None:
    """A new endpoint cannot escape: the fuzzed operations are exactly the schema's."""
    operations = {
        f"{method.upper()} {path}"
        for path, item in public_schema_document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert len(operations) >= 20
    assert operations == FUZZED["direct"], "fuzz test_backend_directly first"
    assert operations == FUZZED["gateway"], "fuzz test_through_the_gateway first"
