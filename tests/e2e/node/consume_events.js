// A consumer of rollcall.events the way an internal platform writes one (amqplib): a queue of its own
// bound to every event type, each message acknowledged after it is handled. It prints one JSON line per
// message (routing key, AMQP properties, CloudEvents headers and the body parsed from JSON) and a line
// {"ready": true} once it consumes. Stops on SIGTERM.
//
//   node consume_events.js <amqp url> <exchange>
"use strict";

const amqp = require("amqplib");

async function main() {
  const [url, exchange] = process.argv.slice(2);
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, "topic", { durable: true });
  const { queue } = await channel.assertQueue("", { exclusive: true });
  await channel.bindQueue(queue, exchange, "#");
  await channel.consume(queue, (message) => {
    const line = {
      routingKey: message.fields.routingKey,
      contentType: message.properties.contentType,
      messageId: message.properties.messageId,
      deliveryMode: message.properties.deliveryMode,
      headers: message.properties.headers,
      body: JSON.parse(message.content.toString("utf8")),
    };
    process.stdout.write(JSON.stringify(line) + "\n");
    channel.ack(message);
  });
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
  process.on("SIGTERM", async () => {
    await channel.close();
    await connection.close();
    process.exit(0);
  });
}

main().catch((error) => {
  process.stderr.write(String(error.stack || error) + "\n");
  process.exit(1);
});
