"""Reference dump of an HL7 v2 file made with python-hl7 (hl7==0.4.5).

Usage:

    .venv/bin/python tests/peers/python_hl7_dump.py FILE

prints one JSON document on stdout:

    {"messages": [{"segments": [{"id": "PID", "fields": {"1": F, "2": F}}]}]}

Field numbers are HL7's (1-based). For MSH (and FHS/BHS, which are never
output here) field "1" is the field separator and field "2" the encoding
characters, both as plain strings. Every other field F is a fully nested
list: repetitions -> components -> subcomponents -> raw text, exactly as it
stands between the delimiters (escape sequences are NOT decoded). An empty
field is [[[""]]] and A^B~C is [[["A"],["B"]],[["C"]]]. Fields after the
last one present in the segment are not output; empty fields before it
(including trailing "||" at the end of a segment) are.

This is the independent peer for the Rust parser's cross-check test: the
values come from python-hl7's object model, not from splitting strings here.

Steps: read the bytes, strip one leading UTF-8 BOM, decode as UTF-8 (latin-1
if that fails), turn CRLF and LF into CR (python-hl7 splits segments on CR
only), cut the file into messages at every segment starting with "MSH",
drop FHS/BHS/BTS/FTS batch envelope segments and blank (empty or
whitespace-only) lines, and parse each message with hl7.parse().

python-hl7 0.4.5 quirks, and how they are handled
--------------------------------------------------
* Inconsistent nesting. Below the segment, hl7.parse only creates a level
  when a delimiter of that level or a deeper one occurs in the text;
  otherwise the text is stored as a plain str one level up. So "X" is
  Field(["X"]) (a str directly in the Field, no Repetition), in "A^B~C" the
  second repetition is Repetition(["C"]) (a str, no Component), and "A^B"
  gives Components ["A"], ["B"]. `nest_field` below turns a str met at any
  level into the full depth ("X" at field level -> [[["X"]]]).
* A segment with no field separator at all (e.g. a bare "NTE") becomes
  Segment(["NTE"]): the id is a str, not a Field, so
  Message.segment("NTE") cannot find it (it compares segment[0][0], which
  is "N"). Here it is output with its id and no fields.
* MSH: the segment is built as [Field(["MSH"]), Field(["|"]),
  Field(["^~\\&"]), MSH-3, ...], so index n is MSH-n, as in HL7. MSH-1 and
  MSH-2 are never split, which is what HL7 requires.
* hl7.parse() calls str.strip() on the whole message, so whitespace at the
  very start of the message and at the very end of its last segment is
  lost (a trailing "text   " in the last field comes back as "text"). This
  script does not paper over that: it prints a warning on stderr naming the
  message when stripping changed it, so a cross-check can skip or expect
  that difference. (Trailing spaces in other segments are kept. The
  corpus in /work/shared has trailing spaces only on non-final segments.)
* Because of that strip, a final empty segment (the text ending in CR) never
  becomes an empty Segment. Blank lines in the middle would each become a
  Segment([""]); they are dropped before parsing instead.
* Trailing empty fields are kept ("PID|1||" has PID-2 and PID-3, both
  [[[""]]]), since python-hl7 just splits on "|".
* hl7.parse takes the delimiters from MSH-1/MSH-2 (defaults "^~\\&" for
  missing ones; a 5th character, the 2.7+ truncation character, is
  ignored) and does not unescape: raw text is what python-hl7 holds.
"""

import json
import sys

import hl7

ENVELOPE = ("FHS", "BHS", "BTS", "FTS")
BOM = b"\xef\xbb\xbf"


def decode(data):
    if data.startswith(BOM):
        data = data[len(BOM):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def split_messages(text):
    """Segments of the file grouped per message, each message CR-joined."""
    messages = []
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(ENVELOPE):
            continue
        if line.startswith("MSH"):
            messages.append([])
        elif not messages:
            sys.exit(f"segment {number} comes before any MSH: {line[:20]!r}")
        messages[-1].append(line)
    return ["\r".join(segments) for segments in messages]


def nest_component(component):
    """Component (or bare str) -> list of subcomponent strings."""
    if isinstance(component, str):
        return [component]
    return [str(sub) for sub in component]


def nest_repetition(repetition):
    """Repetition (or bare str) -> list of components."""
    if isinstance(repetition, str):
        return [[repetition]]
    return [nest_component(component) for component in repetition]


def nest_field(field):
    """Field -> list of repetitions; a bare str child is a whole repetition."""
    return [nest_repetition(repetition) for repetition in field]


def dump_segment(segment):
    seg_id = str(segment[0])
    fields = {}
    for number in range(1, len(segment)):
        if seg_id == "MSH" and number in (1, 2):
            # Field(["|"]) and Field(["^~\\&"]): one unsplit string each.
            fields[str(number)] = segment[number][0]
        else:
            fields[str(number)] = nest_field(segment[number])
    return {"id": seg_id, "fields": fields}


def dump_message(text, index, path):
    if text.strip() != text:
        print(
            f"{path}: message {index}: python-hl7 strips whitespace at the "
            "start/end of the message; those characters are not in the dump",
            file=sys.stderr,
        )
    message = hl7.parse(text)
    return {"segments": [dump_segment(segment) for segment in message]}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python_hl7_dump.py FILE")
    path = sys.argv[1]
    with open(path, "rb") as f:
        text = decode(f.read())
    messages = [
        dump_message(message, index, path)
        for index, message in enumerate(split_messages(text), start=1)
    ]
    json.dump({"messages": messages}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
