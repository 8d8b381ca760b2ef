// A small SIS connector written the way another team would write one in Node.js (amqplib): it reads a
// student file in the rollcall CSV upload format and publishes it to the import exchange per the queue
// contract (README "Student-file imports", shared/spec/api.md "Queue contract"):
//
// - exchange `<prefix>.import` (checked passively first: a mistyped prefix is an error, not a new
//   topology), routing key `rows.<school_id>`, `mandatory` (an unroutable message is an error);
// - every message persistent, `content_type` application/json, a unique `message_id`, and `user_id`
//   = the connection's AMQP user (RabbitMQ checks it; the import service requires it);
// - bodies are proto3 JSON of rollcall.importer.v1.ImportMessage (camelCase names, enum names as
//   strings): `rows: {rows: [StudentRow...]}` (1..1000 rows each), then, once every row message is
//   confirmed, the `end` message with `totalRows` (the distinct row numbers sent);
// - publisher confirms (a ConfirmChannel): each message must be acked by the broker.
//
// On success it prints one JSON line, {"jobId", "rows", "messages"}, and exits 0. Any failure (bad
// arguments, unreadable or malformed file, broker unreachable or refusing, a nack, a returned
// message, a closed channel) is ONE line on stderr, `publish_csv: error: ...`, exit 1 (2 for usage).
//
//   node publish_csv.js --school <uuid> [--url amqp://guest:guest@127.0.0.1:5672/] [--prefix rollcall]
//                       [--job <id>] [--mode sync|manual] [--sensitive] [--dry-run] [--full-roster]
//                       [--source-name <label>] [--rows-per-message 100] <file.csv>
//
// CSV (api.md "CSV upload format"): UTF-8 with or without a BOM, RFC 4180 quoting; a header row with
// `username` and `email_address` and optionally `first_name`, `last_name`, `auth_identifier` and
// `status` (names trimmed, case-insensitive, any order); other columns go to `extra` (`password` is
// never read); data records are numbered from 1, a blank one is skipped but keeps its number; one
// leading `'` a spreadsheet guard added before a formula character is removed again.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const { parseArgs } = require("node:util");
const amqp = require("amqplib");

const PROG = "publish_csv";
const FIELDS = {
  username: "username",
  email_address: "emailAddress",
  first_name: "firstName",
  last_name: "lastName",
  auth_identifier: "authIdentifier",
};
const REQUIRED = ["username", "email_address"];
const NOT_EXTRA = new Set(["status", "password"]);
const MODES = { sync: "IMPORT_MODE_ONGOING_SYNC", manual: "IMPORT_MODE_MANUAL_FILE" };
const SCHOOL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const GUARDED_FORMULA = /^'+[=+\-@\t\r]/;
const CONFIRM_TIMEOUT_MS = 30000;

class Failure extends Error {}
class Usage extends Error {}

// --- the file ------------------------------------------------------------------------------------

/** RFC 4180 records, read leniently as Python's csv module does (a stray quote is kept as text). */
function parseCsv(text) {
  const records = [];
  let record = [];
  let cell = "";
  let quoted = false; // inside a quoted section of the current cell
  let started = false; // the current record has a character (or a delimiter) in it
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char !== '"') cell += char;
      else if (text[i + 1] === '"') (cell += '"'), i++;
      else quoted = false;
    } else if (char === '"' && cell === "") {
      quoted = started = true;
    } else if (char === ",") {
      record.push(cell), (cell = ""), (started = true);
    } else if (char === "\r" || char === "\n") {
      if (char === "\r" && text[i + 1] === "\n") i++;
      record.push(cell), records.push(started || cell ? record : []);
      (record = []), (cell = ""), (started = false);
    } else {
      (cell += char), (started = true);
    }
  }
  if (quoted) throw new Failure("the file ends inside a quoted cell (a '\"' is not closed)");
  if (started || cell) record.push(cell), records.push(record);
  return records;
}

function unguard(cells) {
  if (!cells.some((cell) => cell.startsWith("'"))) return cells;
  return cells.map((cell) => (GUARDED_FORMULA.test(cell) ? cell.slice(1) : cell));
}

/** The StudentRow JSON objects of a CSV file, numbered by data record from 1. */
function readRows(file) {
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new Failure(`cannot read ${file}: ${error.code || error.message}`);
  }
  // TextDecoder drops a leading BOM and reads bad bytes as U+FFFD; NULs read as U+FFFD too
  const text = new TextDecoder("utf-8").decode(bytes).replace(/\0/g, "\uFFFD");
  let parsed;
  try {
    parsed = parseCsv(text);
  } catch (error) {
    throw new Failure(`${file}: ${error.message}`);
  }
  const [header, ...records] = parsed.map(unguard);
  if (!header || !header.some((name) => name.trim())) {
    throw new Failure(`${file}: the header row is empty; the first line must name the columns`);
  }
  const columns = new Map(); // key -> index
  const extras = []; // [name, index]
  header.forEach((raw, index) => {
    const name = raw.trim();
    const key = name.toLowerCase();
    if (!key) return;
    if (columns.has(key)) throw new Failure(`${file}: the header row names the column '${name}' more than once`);
    columns.set(key, index);
    if (!(key in FIELDS) && !NOT_EXTRA.has(key)) extras.push([name, index]);
  });
  const missing = REQUIRED.filter((key) => !columns.has(key));
  if (missing.length) throw new Failure(`${file}: the header row has no ${missing.map((c) => `'${c}'`).join(", ")} column`);

  const rows = [];
  records.forEach((cells, index) => {
    if (!cells.some((cell) => cell.trim())) return; // blank: no row, but the number is used up
    const at = (key) => (columns.has(key) ? cells[columns.get(key)] ?? "" : "");
    const row = { rowNumber: index + 1 };
    for (const [key, jsonName] of Object.entries(FIELDS)) row[jsonName] = at(key);
    if (extras.length) row.extra = Object.fromEntries(extras.map(([name, i]) => [name, cells[i] ?? ""]));
    const status = at("status");
    if (status) row.status = status;
    rows.push(row);
  });
  return rows;
}

// --- the arguments -------------------------------------------------------------------------------

function options(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: "string", default: process.env.ROLLCALL_AMQP_URL || "amqp://guest:guest@127.0.0.1:5672/" },
        prefix: { type: "string", default: process.env.ROLLCALL_AMQP_PREFIX || "rollcall" },
        school: { type: "string" },
        job: { type: "string" },
        mode: { type: "string", default: "sync" },
        sensitive: { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        "full-roster": { type: "boolean", default: false },
        "source-name": { type: "string" },
        "rows-per-message": { type: "string", default: "100" },
      },
    });
  } catch (error) {
    throw new Usage(error.message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new Usage("give exactly one CSV file");
  if (!values.school || !SCHOOL_ID.test(values.school)) {
    throw new Usage(`--school must be a school id, a lower-case UUID (got '${values.school ?? ""}')`);
  }
  if (!(values.mode in MODES)) throw new Usage(`--mode must be sync or manual (got '${values.mode}')`);
  const perMessage = Number(values["rows-per-message"]);
  if (!Number.isInteger(perMessage) || perMessage < 1 || perMessage > 1000) {
    throw new Usage(`--rows-per-message must be 1..1000 (got '${values["rows-per-message"]}')`);
  }
  let user;
  try {
    const url = new URL(values.url);
    if (!["amqp:", "amqps:"].includes(url.protocol)) throw new Error("not amqp");
    user = decodeURIComponent(url.username) || "guest"; // amqplib's default user, as the broker sees it
  } catch {
    throw new Usage(`--url must be an amqp:// or amqps:// URL (got '${masked(values.url)}')`);
  }
  const file = positionals[0];
  return {
    file,
    url: values.url,
    user,
    exchange: `${values.prefix}.import`,
    perMessage,
    job: {
      jobId: values.job || `node-${crypto.randomUUID()}`,
      schoolId: values.school,
      mode: MODES[values.mode],
      sensitiveFieldsUpdate: values.sensitive,
      dryRun: values["dry-run"],
      sourceName: values["source-name"] ?? path.basename(file),
      fullRoster: values["full-roster"],
    },
  };
}

function masked(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return String(url).replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
}

// --- publishing ----------------------------------------------------------------------------------

/** A confirm channel whose every publish resolves once the broker acked it (and did not return it). */
class Publisher {
  constructor(connection, channel, settings) {
    this.connection = connection;
    this.channel = channel;
    this.settings = settings;
    this.returned = new Map(); // message id -> reply text
    this.closing = false;
    let fail;
    this.failed = new Promise((_, reject) => (fail = reject));
    this.failed.catch(() => {}); // observed by every wait
    this.fail = fail;
    const broken = (what) => (error) => {
      if (!this.closing) fail(new Failure(`${what}: ${error ? error.message : "closed"}`));
    };
    connection.on("error", broken("the broker connection failed"));
    connection.on("close", broken("the broker closed the connection"));
    channel.on("error", broken("the broker closed the channel"));
    channel.on("close", broken("the broker closed the channel"));
    channel.on("return", (message) => {
      this.returned.set(message.properties.messageId, `${message.fields.replyCode} ${message.fields.replyText}`);
    });
  }

  async race(promise, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failure(`no confirm from the broker within 30 s (${what})`)), CONFIRM_TIMEOUT_MS);
    });
    try {
      return await Promise.race([promise, this.failed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Publishes one ImportMessage; the promise settles with the broker's confirm. */
  async publish(message, what) {
    const messageId = crypto.randomUUID();
    const confirmed = new Promise((resolve, reject) => {
      const written = this.channel.publish(
        this.settings.exchange,
        `rows.${message.schoolId}`,
        Buffer.from(JSON.stringify(message), "utf8"),
        {
          persistent: true,
          mandatory: true,
          contentType: "application/json",
          messageId,
          userId: this.settings.user,
        },
        (error) => {
          if (error) reject(new Failure(`the broker refused ${what} (nack)`));
          else if (this.returned.has(messageId)) {
            reject(new Failure(`${what} was returned unroutable (${this.returned.get(messageId)}): no queue is bound to rows.${message.schoolId} on ${this.settings.exchange}`));
          } else resolve();
        }
      );
      this.pendingDrain = written ? null : new Promise((resolve) => this.channel.once("drain", resolve));
    });
    if (this.pendingDrain) await this.race(this.pendingDrain, what);
    return confirmed;
  }

  async close() {
    this.closing = true;
    try {
      await this.channel.close();
      await this.connection.close();
    } catch {
      // already closed: nothing to release
    }
  }
}

async function connect(settings) {
  let connection;
  try {
    connection = await amqp.connect(settings.url);
  } catch (error) {
    throw new Failure(`cannot connect to ${masked(settings.url)}: ${error.code || error.message}`);
  }
  let channel;
  try {
    channel = await connection.createConfirmChannel();
  } catch (error) {
    await connection.close().catch(() => {});
    throw new Failure(`cannot open a channel on ${masked(settings.url)}: ${error.message}`);
  }
  const publisher = new Publisher(connection, channel, settings);
  try {
    await publisher.race(channel.checkExchange(settings.exchange), "checking the exchange");
  } catch (error) {
    publisher.closing = true;
    await connection.close().catch(() => {});
    if (!/404|NOT.FOUND/.test(error.message)) throw error;
    throw new Failure(
      `no exchange '${settings.exchange}' on ${masked(settings.url)} (is the prefix right and the import service started?)`
    );
  }
  return publisher;
}

async function main(argv) {
  const settings = options(argv);
  const rows = readRows(settings.file);
  const publisher = await connect(settings);
  let messages = 0;
  try {
    const confirms = [];
    for (let start = 0; start < rows.length; start += settings.perMessage) {
      const chunk = rows.slice(start, start + settings.perMessage);
      const what = `the message of rows ${chunk[0].rowNumber}..${chunk[chunk.length - 1].rowNumber}`;
      confirms.push(publisher.publish({ ...settings.job, rows: { rows: chunk } }, what));
      messages++;
    }
    await publisher.race(Promise.all(confirms), "the row messages");
    // the end goes last, once every row message is confirmed
    const totalRows = new Set(rows.map((row) => row.rowNumber)).size;
    await publisher.race(publisher.publish({ ...settings.job, end: { totalRows } }, "the end message"), "the end message");
    messages++;
  } finally {
    await publisher.close();
  }
  process.stdout.write(JSON.stringify({ jobId: settings.job.jobId, rows: rows.length, messages }) + "\n");
}

module.exports = { parseCsv, readRows };

if (require.main === module) {
  run();
}

function run() {
main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error) => {
    const known = error instanceof Failure || error instanceof Usage;
    const text = known ? error.message : `unexpected: ${error && error.stack ? error.stack.split("\n")[0] : error}`;
    process.stderr.write(`${PROG}: error: ${text.replace(/\s*\n\s*/g, " ")}\n`);
    process.exit(error instanceof Usage ? 2 : 1);
  }
);
}
