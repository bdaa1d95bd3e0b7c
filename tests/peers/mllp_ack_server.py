"""Independent MLLP receiver (not Plexus) that logs and ACKs every message.

Usage:

    .venv/bin/python tests/peers/mllp_ack_server.py [--port 0] [--log FILE]
                                                    [--reply AA|AE|AR]

Binds 127.0.0.1 (--port 0, the default, takes any free port), prints exactly
one line, "LISTENING <port>", on stdout, flushes, and serves until killed.
Nothing else is ever written to stdout; diagnostics go to stderr (a few
lines per bad frame at most; tracebacks only on bugs). Any number of
connections, each in its own thread, each carrying any number of messages.

For every MLLP frame (0x0B <message> 0x1C 0x0D) received it:

1. appends to --log (if given) the message bytes exactly as received
   between 0x0B and 0x1C (no decoding, no newline conversion), directly
   followed by the separator line LOG_SEPARATOR ("=== END OF MESSAGE ===\\n").
   A message ending in CR, as HL7 requires, thus gives
   "MSH|...\\r...\\rPID|...\\r=== END OF MESSAGE ===\\n"; if the sender left
   off the final CR the separator is glued to the last segment, which shows
   exactly what arrived. The log is opened, appended and closed (under a
   lock) BEFORE the ACK is sent, so once a client has its ACK the message is
   in the file. Read it as bytes and split on LOG_SEPARATOR (the last piece
   is empty);
2. answers with an ACK frame. For a message that parses, python-hl7's
   Message.create_ack(ack_code=--reply) builds it: MSH-3/4 = the message's
   MSH-5/6, MSH-5/6 = its MSH-3/4, MSH-7 = now (UTC), MSH-9 =
   ACK^<trigger>^ACK, MSH-10 = a new 20-character id, MSH-11/12 copied,
   MSA-1 = --reply (default AA), MSA-2 = the message's MSH-10. Delimiters are
   the message's own (MSH-1/MSH-2). A message that does not parse gets
   "MSH|^~\\&|MLLP_ACK_SERVER||||<now>||ACK|<new id>|P|2.5\\rMSA|AR|\\r"
   (always AR, whatever --reply says; MSA-2 empty) and a line on stderr.
   Replies are UTF-8 (latin-1 if the message was not valid UTF-8), framed
   0x0B <ack> 0x1C 0x0D; the ACK text ends in CR.

"Does not parse" means any of: the frame fails hl7apy's MLLP validator regex
(see below), hl7apy's get_message_type() rejects it (no "MSH" + field
separator at the start, bad or duplicate encoding characters), hl7.parse()
rejects it, or python-hl7 0.4.5's create_ack() cannot build the ACK. The
last happens for MSHs that lack MSH-11 or MSH-12 (IndexError) or whose
MSH-9 has no component separator, e.g. plain "ADT" (TypeError: create_ack
reads MSH-9.2 with msh(9)(1)(2)); MSH-9, -10, -11 and -12 are required
fields, so an AR is fair.

How hl7apy (1.3.5) is used, and what is overridden
---------------------------------------------------
hl7apy.mllp.MLLPServer is used as is: a socketserver.ThreadingTCPServer that
binds in its constructor, so port 0 works and the real port is read from
server.server_address[1] (server.port stays 0). Routing is hl7apy's:
MLLPRequestHandler._route_message() calls hl7apy.parser.get_message_type()
(MSH-9 as a string) and looks the type up in the handlers dict; AckHandler
and ErrorHandler are hl7apy AbstractHandler / AbstractErrorHandler
subclasses, and the frame is checked with hl7apy's own validator
(_extract_hl7_message). The dict is AnyMessageType, a dict whose
__missing__ sends every message type to AckHandler, because hl7apy only
routes types listed in it. The "ERR" key is hl7apy's error-handler hook
(InvalidHL7Message and friends land there), so a message whose MSH-9 is
literally "ERR" (not a real HL7 type) is misrouted and ends up with an AR.

Only MLLPRequestHandler.handle() is replaced (PersistentMLLPHandler),
because the stock one cannot serve Plexus or mllp_send:
* it reads ONE frame and then closes the connection, so a client sending a
  second message on the same connection gets EOF/ECONNRESET instead of an
  ACK (mllp_send sends a whole file on one connection). The override loops
  until the client closes;
* it decodes strictly as UTF-8 and dies (no reply, traceback) on anything
  else; the override falls back to latin-1;
* when the validator or routing fails it closes the connection without a
  reply; the override answers AR;
* it mixes socket.recv(3) with the buffered rfile, and aborts if the first
  recv() returns something other than 0x0B (bytes between frames); the
  override buffers recv() itself and skips bytes outside frames (noted on
  stderr).
The server is created with timeout=None (hl7apy's default, 10 s, would
become an idle timeout closing quiet connections) and daemon_threads so
that Ctrl-C does not wait for open connections.

hl7apy quirks kept on purpose (they are part of "what a real peer does"):
the validator regex is 0x0B(([^\\r]+\\r)*([^\\r]+\\r?))0x1C0x0D, so an empty
segment (two CRs in a row, e.g. a message ending in "\\r\\r" or a blank
line turned into CR) fails validation and gets an AR. Segments may contain
LF (it is not a segment separator for either library). A frame left open
at EOF is dropped without a reply (noted on stderr).
"""

import argparse
import datetime
import sys
import threading

import hl7
from hl7apy.mllp import (
    AbstractErrorHandler,
    AbstractHandler,
    InvalidHL7Message,
    MLLPRequestHandler,
    MLLPServer,
)

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
LOG_SEPARATOR = b"=== END OF MESSAGE ===\n"


def frame(text):
    return "\x0b" + text + "\x1c\r"


def reject_ack():
    """The AR sent for a message that cannot be parsed (MSA-2 empty)."""
    now = datetime.datetime.utcnow().strftime("%Y%m%d%H%M%S")
    control_id = hl7.generate_message_control_id()
    return (
        f"MSH|^~\\&|MLLP_ACK_SERVER||||{now}||ACK|{control_id}|P|2.5\r"
        "MSA|AR|\r"
    )


class AckHandler(AbstractHandler):
    """hl7apy handler for any message type: python-hl7 builds the ACK."""

    def __init__(self, message, ack_code):
        super().__init__(message)
        self.ack_code = ack_code

    def reply(self):
        try:
            ack = hl7.parse(self.incoming_message).create_ack(self.ack_code)
        except Exception as exc:  # python-hl7 gives IndexError, TypeError, ...
            warn(f"cannot build an ACK ({type(exc).__name__}: {exc}); AR sent")
            return frame(reject_ack())
        text = str(ack)  # python-hl7 ends every segment, the last too, in CR
        if not text.endswith("\r"):
            text += "\r"
        return frame(text)


class ErrorHandler(AbstractErrorHandler):
    """hl7apy error handler: InvalidHL7Message etc. get an AR."""

    def reply(self):
        warn(f"rejected message ({type(self.exc).__name__}: {self.exc}); AR sent")
        return frame(reject_ack())


class AnyMessageType(dict):
    """hl7apy handlers dict routing every MSH-9 value to one handler."""

    def __init__(self, handler, error_handler):
        super().__init__(ERR=(error_handler,))
        self.handler = handler

    def __missing__(self, msg_type):
        return self.handler


class PersistentMLLPHandler(MLLPRequestHandler):
    """MLLPRequestHandler serving many frames per connection (see module doc)."""

    def handle(self):
        self.buffer = b""
        while True:
            payload = self.read_frame()
            if payload is None:
                return
            self.server.log_message(payload)
            try:
                text, encoding = payload.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = payload.decode("latin-1"), "latin-1"
            # hl7apy's validator wants the frame, and returns the message.
            message = self._extract_hl7_message(frame(text))
            if message is None:
                response = ErrorHandler(InvalidHL7Message(), text).reply()
            else:
                response = self._route_message(message)
            try:
                self.wfile.write(response.encode(encoding))
            except OSError as exc:  # the client went away
                warn(f"cannot send the ACK: {exc}")
                return

    def read_frame(self):
        """Next frame's payload (bytes between SB and EB CR), None at EOF."""
        while True:
            start = self.buffer.find(SB)
            if start > 0 or (start < 0 and self.buffer.strip()):
                junk = self.buffer if start < 0 else self.buffer[:start]
                if junk.strip():
                    warn(f"skipping {len(junk)} bytes outside MLLP frames")
                self.buffer = self.buffer[len(junk):]
                continue
            if start == 0:
                end = self.buffer.find(EB + CR, 1)
                if end >= 0:
                    payload = self.buffer[1:end]
                    self.buffer = self.buffer[end + 2:]
                    return payload
            try:
                chunk = self.request.recv(65536)
            except (ConnectionResetError, TimeoutError):
                chunk = b""
            if not chunk:
                if self.buffer.strip():
                    warn(f"connection closed inside a frame ({len(self.buffer)} bytes dropped)")
                return None
            self.buffer += chunk


class AckServer(MLLPServer):
    daemon_threads = True

    def __init__(self, port, reply, log_path):
        handlers = AnyMessageType((AckHandler, reply), ErrorHandler)
        self.log_path = log_path
        self.log_lock = threading.Lock()
        super().__init__(
            "127.0.0.1",
            port,
            handlers,
            timeout=None,
            request_handler_class=PersistentMLLPHandler,
        )

    def log_message(self, payload):
        if self.log_path is None:
            return
        with self.log_lock, open(self.log_path, "ab") as log:
            log.write(payload + LOG_SEPARATOR)


def warn(text):
    print(f"mllp_ack_server: {text}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", metavar="FILE")
    parser.add_argument("--reply", choices=("AA", "AE", "AR"), default="AA")
    args = parser.parse_args()

    server = AckServer(args.port, args.reply, args.log)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
