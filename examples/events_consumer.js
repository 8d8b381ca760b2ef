// An example consumer of rollcall's change events (docs/events.md), for an internal platform in
// Node.js with amqplib:
//
//   cd examples && npm ci && node events_consumer.js
//
// Settings (environment): AMQP_URL (amqp://guest:guest@localhost:5672/), ROLLCALL_EXCHANGE
// (rollcall.events), QUEUE (example.rollcall-events: name it after your platform), BINDINGS
// (comma-separated routing keys or patterns, "#" = every event; e.g. "user.*,school.*").
//
// What every consumer does, shown here:
// - a durable quorum queue of its own, bound to the event types it wants: it keeps the events while
//   the consumer is away;
// - acknowledges a message only after it handled it (delivery is at least once: a message not
//   acknowledged comes again);
// - skips an event whose id it has already handled, and one whose sequence is not above the last it
//   handled for that subject (the subject's state is already newer). Sequences may skip numbers when
//   you bind only some types: a subject's sequence counts all its events.
// The id and sequence come from the CloudEvents headers, so they are read the same way whatever the
// body's content type. This example keeps them in memory; a real consumer stores the last sequence
// per subject with its own data, in the same transaction as the effect of the event.
"use strict";

const amqp = require("amqplib");

const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@localhost:5672/";
const EXCHANGE = process.env.ROLLCALL_EXCHANGE || "rollcall.events";
const QUEUE = process.env.QUEUE || "example.rollcall-events";
const BINDINGS = (process.env.BINDINGS || "#").split(",").map((key) => key.trim()).filter(Boolean);
const REMEMBERED_IDS = 100000;

/** Ids of the events handled lately (a bounded set: insertion order, the oldest forgotten first). */
class RecentIds {
  constructor(limit) {
    this.limit = limit;
    this.ids = new Set();
  }

  has(id) {
    return this.ids.has(id);
  }

  add(id) {
    this.ids.add(id);
    if (this.ids.size > this.limit) {
      this.ids.delete(this.ids.values().next().value);
    }
  }
}

const handledIds = new RecentIds(REMEMBERED_IDS);
const lastSequence = new Map(); // subject -> the last sequence handled (a BigInt)

/** The event's body: an object for application/json; for application/x-protobuf the bytes, for
 * your decoder (e.g. protobufjs with protos/rollcall/events/v1/events.proto). */
function body(message) {
  const contentType = (message.properties.contentType || "").split(";")[0].trim().toLowerCase();
  if (contentType === "application/json") {
    return JSON.parse(message.content.toString("utf8"));
  }
  return message.content;
}

/** Your platform's work. Here: one line per event. */
function handle(event, payload) {
  if (Buffer.isBuffer(payload)) {
    console.log(`${event.type} ${event.subject} #${event.sequence} (${payload.length} bytes of protobuf)`);
    return;
  }
  const what = payload.user
    ? payload.user.user
    : payload.userDeleted || (payload.school && payload.school.school) || (payload.job && payload.job.job);
  const detail = payload.user ? ` changed ${JSON.stringify(payload.user.changedFields || [])}` : "";
  const summary = what ? ` ${JSON.stringify(what).slice(0, 200)}` : "";
  console.log(`${event.type} ${event.subject} #${event.sequence}${detail}${summary}`);
}

async function onMessage(channel, message) {
  const headers = message.properties.headers || {};
  const event = {
    id: String(headers["cloudEvents:id"] || message.properties.messageId),
    type: String(headers["cloudEvents:type"] || "").replace(/^rollcall\./, "") || message.fields.routingKey,
    subject: String(headers["cloudEvents:subject"]),
    sequence: BigInt(String(headers["cloudEvents:sequence"])),
    time: String(headers["cloudEvents:time"]),
  };
  const last = lastSequence.get(event.subject) || 0n;
  if (handledIds.has(event.id) || event.sequence <= last) {
    console.log(`skipped ${event.type} ${event.subject} #${event.sequence} (already handled)`);
    channel.ack(message);
    return;
  }
  try {
    handle(event, body(message));
  } catch (error) {
    // Not acknowledged: it comes back (give up after a few tries in a real consumer).
    console.error(`failed ${event.type} ${event.subject} #${event.sequence}: ${error}`);
    channel.nack(message, false, true);
    return;
  }
  handledIds.add(event.id);
  lastSequence.set(event.subject, event.sequence);
  channel.ack(message);
}

async function main() {
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  // The relays declare the exchange too; declaring it here lets the consumer start first.
  await channel.assertExchange(EXCHANGE, "topic", { durable: true });
  await channel.assertQueue(QUEUE, { durable: true, arguments: { "x-queue-type": "quorum" } });
  for (const key of BINDINGS) {
    await channel.bindQueue(QUEUE, EXCHANGE, key);
  }
  // A message at a time keeps the handling order the queue's order (per subject: sequence order).
  await channel.prefetch(1);
  await channel.consume(QUEUE, (message) => {
    if (message !== null) {
      onMessage(channel, message);
    }
  });
  console.log(`consuming ${QUEUE} (${BINDINGS.join(", ")} on ${EXCHANGE}); Ctrl-C stops`);

  const stop = async () => {
    await channel.close();
    await connection.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
