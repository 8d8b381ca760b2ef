"""protos/asyncapi.yaml says what the code does: its JSON schemas have exactly the fields of the proto
messages (shared/proto descriptors) in the proto3 JSON form, every event type of events.proto has its
channel, operation and messages, the names, content types, CloudEvents headers, AMQP properties and
dead-letter reasons are the ones the services use, and its examples — and events and import messages
encoded by the services' own code — validate against its schemas. (`make asyncapi-lint` validates the
document itself against the AsyncAPI 3.0 specification.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from identity_service.domain.events import USER_FIELDS, EventType
from import_service.adapters.amqp import dead_letters
from import_service.adapters.amqp.codec import decode as decode_import_message
from import_service.domain.messages import DeadReason, EndMessage, RowsMessage
from shared.amqp import messages as import_wire
from shared.amqp.topology import ROWS_BINDING, Topology, routing_key
from shared.events import publisher
from shared.proto.rollcall.events.v1 import events_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as ipb
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "protos" / "asyncapi.yaml"
EVENTS_PROTO = ROOT / "protos" / "rollcall" / "events" / "v1" / "events.proto"
IMPORT_MIGRATIONS = ROOT / "import_service" / "adapters" / "postgres" / "migrations"
SCHEMAS = "#/components/schemas/"
SOURCES = {"user": "//rollcall/identity", "school": "//rollcall/identity", "import_job": "//rollcall/import"}
PAYLOAD_OF = {"user": "user", "school": "school", "import_job": "job"}
DELETED = {"user.deleted", "user.merged"}  # the user no longer exists: payload user_deleted
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def doc() -> Doc:
    yaml: ModuleType = pytest.importorskip("yaml", reason="PyYAML parses protos/asyncapi.yaml")
    loaded = yaml.safe_load(DOCUMENT.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _proto_event_types() -> list[str]:
    """The event types events.proto lists in the comment of ``Event.type``."""
    text = EVENTS_PROTO.read_text()
    comment = re.search(r"((?:[ \t]*//[^\n]*\n)+)[ \t]*string type = 2;", text)
    assert comment, "events.proto: Event.type and its comment"
    return re.findall(r"`([a-z_]+\.[a-z_]+)`", comment[1])


EVENT_TYPES = _proto_event_types()


def _resolve(doc: Doc, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(doc: Doc, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _resolve(doc, node["$ref"])
    return node


# --- a validator for the JSON Schema subset the document uses (no jsonschema dependency) ------------

_ANNOTATIONS = {"description", "title", "examples", "default", "deprecated", "readOnly", "writeOnly"}
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _errors(doc: Doc, schema: Any, value: Any, at: str = "$") -> Iterator[str]:
    """What is wrong with ``value`` against ``schema``; an unknown keyword fails the test (a check this
    validator would silently skip)."""
    if "$ref" in schema:
        assert set(schema) == {"$ref"}, f"{at}: $ref with siblings (ignored by JSON Schema)"
        yield from _errors(doc, _resolve(doc, schema["$ref"]), value, at)
        return
    for key in schema:
        known = key in _ANNOTATIONS or key.startswith("x-") or key in _KEYWORDS
        assert known, f"{at}: schema keyword {key!r} is not checked by this test's validator"
    for key, check in _KEYWORDS.items():
        if key in schema:
            yield from check(doc, schema, value, at)


def _type(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_TYPES[name](value) for name in names):
        yield f"{at}: {value!r} is not {'/'.join(names)}"


def _properties(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if isinstance(value, dict):
        for name, sub in schema["properties"].items():
            if name in value:
                yield from _errors(doc, sub, value[name], f"{at}.{name}")


def _additional(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if not isinstance(value, dict):
        return
    extra = schema["additionalProperties"]
    for name in set(value) - set(schema.get("properties", {})):
        if extra is False:
            yield f"{at}: unexpected field {name!r}"
        elif isinstance(extra, dict):
            yield from _errors(doc, extra, value[name], f"{at}.{name}")


def _required(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if isinstance(value, dict):
        yield from (f"{at}: {name!r} missing" for name in schema["required"] if name not in value)


def _items(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _errors(doc, schema["items"], item, f"{at}[{i}]")


def _all_of(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    for sub in schema["allOf"]:
        yield from _errors(doc, sub, value, at)


def _one_of(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    matching = sum(1 for sub in schema["oneOf"] if not list(_errors(doc, sub, value, at)))
    if matching != 1:
        yield f"{at}: matches {matching} of oneOf, not exactly one"


def _enum(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if value not in schema["enum"]:
        yield f"{at}: {value!r} not in {schema['enum']}"


def _const(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if value != schema["const"]:
        yield f"{at}: {value!r} is not {schema['const']!r}"


def _pattern(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if isinstance(value, str) and not re.search(schema["pattern"], value):
        yield f"{at}: {value!r} does not match {schema['pattern']}"


def _format(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    if not isinstance(value, str):
        return
    kind = schema["format"]
    assert kind in ("date-time", "uuid", "binary"), f"{at}: format {kind}"
    if kind == "date-time" and not _DATE_TIME.match(value):
        yield f"{at}: {value!r} is not an RFC 3339 date-time"
    if kind == "uuid" and not _UUID.match(value):
        yield f"{at}: {value!r} is not a UUID"


def _bounds(doc: Doc, schema: Doc, value: Any, at: str) -> Iterator[str]:
    for key, test in (
        ("minLength", lambda v, n: not isinstance(v, str) or len(v) >= n),
        ("maxLength", lambda v, n: not isinstance(v, str) or len(v) <= n),
        ("minItems", lambda v, n: not isinstance(v, list) or len(v) >= n),
        ("maxItems", lambda v, n: not isinstance(v, list) or len(v) <= n),
        ("minimum", lambda v, n: not _TYPES["number"](v) or v >= n),
        ("maximum", lambda v, n: not _TYPES["number"](v) or v <= n),
    ):
        if key in schema and not test(value, schema[key]):
            yield f"{at}: {value!r} breaks {key} {schema[key]}"


_KEYWORDS: dict[str, Any] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "items": _items,
    "allOf": _all_of,
    "oneOf": _one_of,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "format": _format,
    **dict.fromkeys(("minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum"), _bounds),
}


def _assert_valid(doc: Doc, schema: Any, value: Any, what: str) -> None:
    errors = list(_errors(doc, schema, value))
    assert not errors, f"{what}: " + "; ".join(errors)


# --- messages filled with a value in every field --------------------------------------------------


def _fill(message: Message) -> Message:
    """Every field set to a value that is not its default (oneof members left to the caller)."""
    for field in message.DESCRIPTOR.fields:
        if field.containing_oneof is not None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _key, value_field = field.message_type.fields
            mapping = getattr(message, field.name)
            if value_field.message_type is not None:
                _fill(mapping["key"])
            else:
                mapping["key"] = _scalar(value_field)
        elif field.is_repeated:
            repeated = getattr(message, field.name)
            if field.message_type is not None:
                _fill(repeated.add())
            else:
                repeated.append(_scalar(field))
        elif field.message_type is not None:
            _fill(getattr(message, field.name))
        else:
            setattr(message, field.name, _scalar(field))
    if message.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
        message.CopyFrom(_now())
    return message


def _scalar(field: FieldDescriptor) -> Any:
    if field.enum_type is not None:
        return field.enum_type.values[-1].number
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_STRING:
        return "0b3c3d52-8f0e-4d0a-9f51-2f1d6a9e7c01"
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32):
        return 7
    raise AssertionError(f"{field.full_name}: no sample value for its type")


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(2026, 12, 1, 9, 30, 12, 482_000))
    return stamp


def _event(event_type: str) -> pb.Event:
    event = _fill(pb.Event())
    assert isinstance(event, pb.Event)
    event.type = event_type
    event.sequence = 12
    payload = "user_deleted" if event_type in DELETED else PAYLOAD_OF[event_type.split(".")[0]]
    _fill(getattr(event, payload))
    if payload == "user":
        event.user.changed_fields[:] = ["status", "email"]
    return event


def _camel(event_type: str) -> str:
    head, *rest = event_type.replace(".", "_").split("_")
    return head + "".join(part.title() for part in rest)


# --- the tests -----------------------------------------------------------------------------------


def test_document_is_asyncapi_3_and_names_what_the_services_declare(doc: Doc) -> None:
    assert doc["asyncapi"].startswith("3.0.")
    topology = Topology("rollcall")
    rows = doc["channels"]["importRows"]
    assert rows["address"] == routing_key("{schoolId}") and set(rows["parameters"]) == {"schoolId"}
    assert rows["address"].replace("{schoolId}", "*") == ROWS_BINDING
    exchange = rows["bindings"]["amqp"]["exchange"]
    assert (exchange["name"], exchange["type"], exchange["durable"]) == (topology.exchange, "topic", True)
    dead = doc["channels"]["importDeadLetters"]
    assert dead["address"] == dead["bindings"]["amqp"]["queue"]["name"] == topology.dead_queue
    assert topology.dead_exchange in dead["description"] and topology.rows_queue in rows["description"]
    events = doc["components"]["channelBindings"]["events"]["amqp"]
    assert events["is"] == "routingKey"
    assert (events["exchange"]["name"], events["exchange"]["type"]) == (topology.events_exchange, "topic")
    assert events["exchange"]["durable"] is True
    operations = doc["operations"]
    assert operations["receiveImportRows"]["action"] == "receive"
    assert operations["sendDeadLetter"]["action"] == "send"


def test_every_event_type_has_its_channel_operation_and_messages(doc: Doc) -> None:
    assert len(EVENT_TYPES) == 13 and len(set(EVENT_TYPES)) == 13
    identity_types = {t.value for t in EventType}
    migrations = " ".join(p.read_text() for p in IMPORT_MIGRATIONS.glob("*.sql"))
    import_types = set(re.findall(r"'(import_job\.[a-z_]+)'", migrations))
    assert identity_types | import_types == set(EVENT_TYPES), "events.proto lists what the services write"
    event_schema = doc["components"]["schemas"]["Event"]
    assert event_schema["properties"]["type"]["enum"] == EVENT_TYPES

    channels = {c["address"]: (name, c) for name, c in doc["channels"].items()}
    assert set(channels) == {*EVENT_TYPES, "rows.{schoolId}", "rollcall.import.dead"}
    sent = {o["channel"]["$ref"]: o for o in doc["operations"].values() if o["action"] == "send"}
    for event_type in EVENT_TYPES:
        name, channel = channels[event_type]
        assert name == _camel(event_type)
        assert channel["bindings"] == {"$ref": "#/components/channelBindings/events"}
        operation = sent[f"#/channels/{name}"]
        assert operation["bindings"] == {"$ref": "#/components/operationBindings/publishEvent"}
        assert [m["$ref"] for m in operation["messages"]] == [
            f"#/channels/{name}/messages/json",
            f"#/channels/{name}/messages/protobuf",
        ]
        family = event_type.split(".")[0]
        for form, content_type in (("json", publisher.JSON), ("protobuf", publisher.PROTOBUF)):
            message = _deref(doc, channel["messages"][form])
            assert message["name"] == event_type and message["contentType"] == content_type
            assert message["bindings"]["amqp"]["messageType"] == event_type
            headers = message["headers"]["allOf"][1]["properties"]
            assert headers["cloudEvents:type"] == {"const": f"rollcall.{event_type}"}
            assert headers["cloudEvents:source"] == {"const": SOURCES[family]}
        payload = _deref(doc, channel["messages"]["json"])["payload"]["allOf"]
        assert payload[0] == {"$ref": SCHEMAS + "Event"}
        expected = "userDeleted" if event_type in DELETED else PAYLOAD_OF[family]
        assert payload[1]["required"] == [expected]
        assert payload[1]["properties"]["type"] == {"const": event_type}
        assert set(payload[1]["properties"]) == {"type", expected}


def _reachable(*roots: Descriptor) -> tuple[dict[str, Descriptor], dict[str, EnumDescriptor]]:
    messages: dict[str, Descriptor] = {}
    enums: dict[str, EnumDescriptor] = {}
    todo = list(roots)
    while todo:
        message = todo.pop()
        if message.full_name in messages or message.full_name == "google.protobuf.Timestamp":
            continue
        if not message.GetOptions().map_entry:
            messages[message.full_name] = message
        for field in message.fields:
            if field.message_type is not None:
                todo.append(field.message_type)
            if field.enum_type is not None:
                enums[field.enum_type.full_name] = field.enum_type
    return messages, enums


def _check_value(doc: Doc, prop: Doc, field: FieldDescriptor, at: str) -> None:
    schemas = doc["components"]["schemas"]
    if field.message_type is not None:
        name = field.message_type.name
        assert prop == {"$ref": SCHEMAS + name}, f"{at}: should be a $ref to {name}"
        if name != "Timestamp":
            assert schemas[name]["x-protobuf-message"] == field.message_type.full_name, at
    elif field.enum_type is not None:
        assert prop == {"$ref": SCHEMAS + field.enum_type.name}, f"{at}: should be a $ref to the enum"
        assert schemas[field.enum_type.name]["x-protobuf-enum"] == field.enum_type.full_name, at
    elif field.type == FieldDescriptor.TYPE_INT64:
        assert prop == {"$ref": SCHEMAS + "Int64"}, f"{at}: int64 is a string (or number) in JSON"
    elif field.type == FieldDescriptor.TYPE_INT32:
        assert prop["type"] == "integer", at
    elif field.type == FieldDescriptor.TYPE_BOOL:
        assert prop["type"] == "boolean", at
    elif field.type == FieldDescriptor.TYPE_STRING:
        assert prop["type"] == "string", at
    else:
        raise AssertionError(f"{at}: a field type this document has no JSON form for")


def test_json_schemas_have_exactly_the_fields_of_the_proto_messages(doc: Doc) -> None:
    schemas = doc["components"]["schemas"]
    messages, enums = _reachable(pb.Event.DESCRIPTOR, ipb.ImportMessage.DESCRIPTOR)
    described = {
        s["x-protobuf-message"]: name
        for name, s in schemas.items()
        if "x-protobuf-message" in s and s["type"] == "object"  # not the protobuf (binary) bodies
    }
    assert set(described) == set(messages), "one JSON schema per message the bodies can hold"
    for full_name, descriptor in messages.items():
        name = described[full_name]
        assert name == descriptor.name
        properties = schemas[name]["properties"]
        fields = {f.json_name: f for f in descriptor.fields}
        assert set(properties) == set(fields), f"{name}: fields of {full_name} (JSON names)"
        for json_name, field in fields.items():
            prop, at = properties[json_name], f"{name}.{json_name}"
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                _key, value = field.message_type.fields
                assert prop["type"] == "object", at
                _check_value(doc, prop["additionalProperties"], value, at)
            elif field.is_repeated:
                assert prop["type"] == "array", at
                _check_value(doc, prop["items"], field, at)
            else:
                _check_value(doc, prop, field, at)
        for required in schemas[name].get("required", []):
            assert required in properties, f"{name}: required {required}"
    described_enums = {s["x-protobuf-enum"]: s for s in schemas.values() if "x-protobuf-enum" in s}
    assert set(described_enums) == set(enums)
    for full_name, enum in enums.items():
        # proto3 JSON never writes the zero value: a field holding it is left out
        assert described_enums[full_name]["enum"] == [v.name for v in enum.values if v.number != 0]
    changed = schemas["UserChanged"]["properties"]["changedFields"]["items"]["enum"]
    assert changed == list(USER_FIELDS)
    user_fields = pb.UserChanged.DESCRIPTOR.fields_by_name["user"].message_type.fields
    assert set(changed) <= {f.name for f in user_fields}


def test_cloud_events_headers_are_the_ones_the_publisher_sets(doc: Doc) -> None:
    schema = doc["components"]["schemas"]["CloudEventsHeaders"]
    for event_type in EVENT_TYPES:
        source = SOURCES[event_type.split(".")[0]]
        headers = publisher.cloud_event_headers(_event(event_type), source)
        assert set(schema["required"]) == set(headers) == set(schema["properties"])
        for form in ("Json", "Protobuf"):
            message = doc["components"]["messages"][_camel(event_type) + form]
            _assert_valid(doc, message["headers"], headers, f"{event_type} headers")


async def test_events_the_relay_publishes_match_their_messages(doc: Doc) -> None:
    """Through the real EventPublisher: AMQP properties, headers and the JSON body per event type."""

    class Exchange:
        def __init__(self) -> None:
            self.sent: list[tuple[Any, str]] = []

        async def publish(self, message: Any, routing_key: str) -> None:
            self.sent.append((message, routing_key))

    required = set(doc["components"]["schemas"]["EventAmqpProperties"]["required"])
    assert required == {"delivery_mode", "message_id", "content_type", "type", "timestamp"}
    for content_type in (publisher.JSON, publisher.PROTOBUF):
        exchange = Exchange()
        events = [_event(t) for t in EVENT_TYPES]
        sender = publisher.EventPublisher(exchange, "//rollcall/identity", content_type)  # type: ignore[arg-type]
        await sender.publish(events)
        assert [key for _, key in exchange.sent] == EVENT_TYPES
        for (message, key), event in zip(exchange.sent, events, strict=True):
            assert int(message.delivery_mode) == 2 and message.message_id == event.id
            assert message.content_type == content_type and message.type == key
            assert message.timestamp is not None
            name = _camel(key) + ("Json" if content_type == publisher.JSON else "Protobuf")
            assert doc["components"]["messages"][name]["contentType"] == content_type
            assert publisher.decode(message.body, content_type) == event
            if content_type == publisher.JSON:
                body = json.loads(message.body)
                _assert_valid(doc, doc["components"]["messages"][name]["payload"], body, f"{key} body")


def test_a_body_with_the_wrong_payload_does_not_validate(doc: Doc) -> None:
    """The validator above is no rubber stamp."""
    body = json.loads(publisher.encode(_event("user.deleted"), publisher.JSON))
    payload = doc["components"]["messages"]["userApprovedJson"]["payload"]
    errors = list(_errors(doc, payload, body))
    assert any("'user' missing" in e for e in errors) and any("user.deleted" in e for e in errors)
    body = json.loads(publisher.encode(_event("user.approved"), publisher.JSON))
    body["sequence"] = "twelve"
    body["user"]["user"]["status"] = "ACTIVE"
    errors = set(_errors(doc, payload, body))  # allOf checks `user` twice: the same error twice
    assert len(errors) == 2, errors


def test_event_examples_are_events(doc: Doc) -> None:
    seen = 0
    for name, message in doc["components"]["messages"].items():
        for example in message.get("examples", []):
            if name.startswith("importMessage"):
                continue
            seen += 1
            _assert_valid(doc, message["payload"], example["payload"], f"{name} example payload")
            _assert_valid(doc, message["headers"], example["headers"], f"{name} example headers")
            event = json_format.ParseDict(example["payload"], pb.Event(), ignore_unknown_fields=False)
            assert event.type == message["name"] and event.WhichOneof("payload")
            headers = example["headers"]
            assert (headers["cloudEvents:id"], headers["cloudEvents:subject"]) == (event.id, event.subject)
            assert headers["cloudEvents:sequence"] == str(event.sequence)
    assert seen >= 4


def test_import_message_examples_are_what_the_consumer_accepts(doc: Doc) -> None:
    message = doc["components"]["messages"]["importMessageJson"]
    assert message["contentType"] == import_wire.JSON
    assert doc["components"]["messages"]["importMessageProtobuf"]["contentType"] == import_wire.PROTOBUF
    kinds = set()
    for example in message["examples"]:
        payload = example["payload"]
        _assert_valid(doc, message["payload"], payload, f"example {example['name']}")
        body = json.dumps(payload).encode()
        decoded = decode_import_message(body, import_wire.JSON, routing_key(payload["schoolId"]))
        kinds.add(type(decoded))
        assert decoded.spec.job_id == payload["jobId"]
    assert kinds == {RowsMessage, EndMessage}


def test_import_messages_in_json_match_the_schema(doc: Doc) -> None:
    schema = doc["components"]["messages"]["importMessageJson"]["payload"]
    for body in ("rows", "end"):
        message = _fill(ipb.ImportMessage())
        _fill(getattr(message, body))
        document = json.loads(json_format.MessageToJson(message))
        _assert_valid(doc, schema, document, f"ImportMessage with {body}")
        snake = json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))
        assert list(_errors(doc, schema, snake)), "the schema shows the JSON names"
    both = {**document, "rows": {"rows": [{"rowNumber": "1"}]}, "end": {"totalRows": "1"}}
    assert any("oneOf" in e for e in _errors(doc, schema, both)), "rows or end, not both"
    neither = {k: v for k, v in document.items() if k not in ("rows", "end")}
    assert any("oneOf" in e for e in _errors(doc, schema, neither)), "one of them"
    properties = doc["components"]["schemas"]["ImportAmqpProperties"]
    assert set(properties["required"]) == {"delivery_mode", "message_id", "user_id", "content_type"}
    assert properties["properties"]["content_type"]["enum"] == [import_wire.PROTOBUF, import_wire.JSON]


def test_dead_letter_headers_are_the_services(doc: Doc) -> None:
    headers = doc["components"]["schemas"]["DeadLetterHeaders"]["properties"]
    names = {
        dead_letters.DEAD_REASON_HEADER,
        dead_letters.DEAD_DETAIL_HEADER,
        dead_letters.ROUTING_KEY_HEADER,
        dead_letters.CONTENT_TYPE_HEADER,
        dead_letters.USER_ID_HEADER,
    }
    assert set(headers) == names | {"x-death"}
    assert headers[dead_letters.DEAD_REASON_HEADER]["enum"] == [r.value for r in DeadReason]


def test_settings_offer_both_content_types() -> None:
    for content_type in (publisher.JSON, publisher.PROTOBUF):
        assert Settings(events_content_type=content_type).events_content_type == content_type
