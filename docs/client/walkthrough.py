"""The README's "Five minutes with the API" through a client generated from schema.graphql.

tests/it/generated_client.rs generates the package `anquan_client` with ariadne-codegen from
schema.graphql and docs/client/walkthrough.graphql (scalars mapped by docs/client/scalars.py),
puts it on PYTHONPATH and runs this script with, in its environment:

  ANQUAN_GRAPHQL_URL       the service's /graphql
  ANQUAN_ADMIN_TOKEN       the city admin's token, minted as the README says
  ANQUAN_OFFICER_TOKEN     the town officer's token, minted as the README says
  ANQUAN_REGISTER_INPUT    the README's registerEnterprise input (JSON)
  ANQUAN_UPLOAD_INPUT      the README's uploadDocument input (JSON), `<id>` left unfilled
  ANQUAN_SUMMARY           the summary the README says registering answers

The enterprise's own token needs the id registering returns, so the test mints it: the
script writes one line `{"mint": [ARGS of anquan token]}` and reads the token from the next
line of its input. Any answer other than the README's fails an assertion (exit status 1).
"""

import io
import json
import os
import sys
from datetime import datetime, timezone

from anquan_client.base_model import Upload
from anquan_client.client import Client
from anquan_client.enums import RequirementState, ReviewDecisionKind
from anquan_client.input_types import (
    RegisterEnterpriseInput,
    ReviewDocumentInput,
    UploadDocumentInput,
)

AS_OF = datetime(2028, 12, 31, 16, 0, tzinfo=timezone.utc)


def client(token: str) -> Client:
    url = os.environ["ANQUAN_GRAPHQL_URL"]
    return Client(url=url, headers={"Authorization": f"Bearer {token}"})


def mint_token(*arguments: str) -> str:
    print(json.dumps({"mint": list(arguments)}), flush=True)
    return sys.stdin.readline().strip()


def main() -> None:
    admin = client(os.environ["ANQUAN_ADMIN_TOKEN"])
    officer = client(os.environ["ANQUAN_OFFICER_TOKEN"])

    register_input = RegisterEnterpriseInput.model_validate(
        json.loads(os.environ["ANQUAN_REGISTER_INPUT"])
    )
    registered = admin.register_enterprise(input=register_input).register_enterprise
    assert registered.enterprise is not None
    enterprise_id = registered.enterprise.id
    summary = registered.enterprise.compliance.summary
    assert summary == os.environ["ANQUAN_SUMMARY"], summary
    assert registered.stream_version == 0, repr(registered.stream_version)

    enterprise = client(mint_token("--role", "enterprise", "--enterprise", enterprise_id))
    upload_input = UploadDocumentInput.model_validate(
        json.loads(os.environ["ANQUAN_UPLOAD_INPUT"].replace("<id>", enterprise_id))
    )
    documents = []
    for content in (b"%PDF-1.4 approved", b"%PDF-1.4 returned"):
        file = Upload("certificate.pdf", io.BytesIO(content), "application/pdf")
        uploaded = enterprise.upload_document(input=upload_input, file=file).upload_document
        assert uploaded.document_id is not None
        documents.append(uploaded.document_id)
    approved, returned = documents

    queue = officer.review_queue(town=register_input.town).review_queue.nodes
    queued = {node.id: node for node in queue}
    assert set(documents) <= set(queued), (documents, list(queued))
    assert queued[approved].title == upload_input.title
    assert queued[approved].uploaded_at.tzinfo is not None

    approval = officer.review_document(
        input=ReviewDocumentInput(
            enterprise_id=enterprise_id,
            document_id=approved,
            decision=ReviewDecisionKind.APPROVE,
        )
    ).review_document
    assert approval.document_id == approved
    assert approval.enterprise is not None
    assert approval.enterprise.compliance.summary.startswith("已落实 ")
    returning = officer.review_document(
        input=ReviewDocumentInput(
            enterprise_id=enterprise_id,
            document_id=returned,
            decision=ReviewDecisionKind.RETURN,
            feedback="盖章缺失",
        )
    ).review_document
    assert returning.document_id == returned

    file = admin.enterprise_as_of(id=enterprise_id, as_of=AS_OF).enterprise
    assert file is not None
    assert file.name == register_input.name
    indicators = file.compliance.indicators
    assert len(indicators) == 21, len(indicators)
    requirement = next(
        requirement
        for indicator in indicators
        for requirement in indicator.requirements
        if requirement.code == upload_input.requirement
    )
    assert requirement.state == RequirementState.SATISFIED, requirement
    assert requirement.valid_until == upload_input.valid_until, requirement
    # Int64 arrives as a decimal string; the scalar mapping makes it an int.
    versions = [node.version for node in file.history.nodes]
    assert versions == list(range(len(versions))), versions
    event_types = [node.event_type for node in file.history.nodes]
    print(f"walked the README through the generated client: {event_types}")


if __name__ == "__main__":
    main()
