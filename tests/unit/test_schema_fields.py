"""schemas/rules.schema.json lists each source's field names (editor completion), exactly as the fields table."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator

from auditor.core import resources
from auditor.core.fields import SOURCES


def test_each_source_lists_its_fields_for_completion():
    schema = json.loads(resources.schema_path("rules").read_text())
    for name, source in SOURCES.items():
        listed = schema["$defs"][f"{name}_fields"]["properties"]
        assert list(listed) == list(source.fields), name
    branches = {b["if"]["properties"]["source"]["const"]: b["then"]["properties"]["filter"]["$ref"]
                for b in schema["$defs"]["rule"]["allOf"]}
    assert branches == {name: f"#/$defs/{name}_fields" for name in SOURCES}


def test_listing_fields_changes_no_verdict():
    # The per-source lists only describe: a bad condition is reported once, an unknown field by validate.
    validator = Draft202012Validator(json.loads(resources.schema_path("rules").read_text()))
    rule = {"id": "r", "title": "t", "source": "scim_updates", "filter": {"status": {"bogus": 1}, "nope": "x"}}
    errors = list(validator.iter_errors({"rules": [rule]}))
    assert len(errors) == 1 and list(errors[0].absolute_path) == ["rules", 0, "filter", "status"]
