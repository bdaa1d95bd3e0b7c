// Normalise a lab result before it is filed.
// `msg` is the HL7 v2 message; see docs/scripting.md for the whole API.
var family = msg.get("PID-5-1");
if (family !== null) {
  msg.set("PID-5-1", family.toUpperCase());
}
var given = msg.get("PID-5-2");
if (given !== null) {
  msg.set("PID-5-2", given.toUpperCase());
}

// every OBX without a result status (OBX-11) becomes final
var count = msg.segments("OBX").length;
for (var i = 1; i <= count; i++) {
  if (msg.get("OBX[" + i + "]-11") === null) {
    msg.set("OBX[" + i + "]-11", "F");
  }
}

channelMap.results = count;
logger.info("normalised " + count + " results");
