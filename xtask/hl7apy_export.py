"""Export hl7apy's HL7 v2 definitions (message structures, segments, composite
datatypes) as JSON for the `hl7v2` crate.

Usage (from the repository root):

    .venv/bin/python xtask/hl7apy_export.py > crates/hl7v2/data/structures.json

The venv needs the pinned packages of tests/peers/requirements.txt
(hl7apy==1.3.5). Output is deterministic: every object has sorted keys,
arrays keep the standard's order, and one leaf object is written per line.
hl7apy's code is only run here, never copied; the output is data about the
HL7 v2 standard as hl7apy encodes it.

Output schema
-------------
    {"source": "...",
     "versions": {"2.5.1": {
        "structures": {"ADT_A01": [ITEM, ...], ...},
        "segments":   {"PID": [{"seq","name","type","table","min","max","len"}, ...]},
        "datatypes":  {"XPN": [{"seq","name","type","table"}, ...]}}}}

    ITEM is {"segment": ID, "min": N, "max": N}
         or {"group": NAME, "min": N, "max": N, "children": [ITEM, ...]}
         or the same group object with "choice": true added (see below).

max = -1 means unbounded. Group names drop the "<structure>_" prefix
(hl7apy's ORU_R01_ORDER_OBSERVATION becomes ORDER_OBSERVATION).

What hl7apy's tuples mean (hl7apy 1.3.5, hl7apy/v2_x/*.py)
---------------------------------------------------------
* MESSAGES[name] and GROUPS[name] are (kind, children) with kind
  "sequence" or "choice"; each child is (name, reference, (min, max), cls)
  where cls is "SEG" (reference = SEGMENTS[name]) or "GRP" (reference =
  GROUPS[name], a group name carrying the message prefix). max -1 means
  unbounded.
* A "choice" group means exactly one of its children occurs; its children
  then carry (1, 1) each. hl7apy uses it for ORM_O01's
  OBR/RQD/RQ1/RXO/ODS/ODT choice and PPR_PC1's OBR/RXO (2.3.1) or
  OBR/ANYHL7SEGMENT (2.8.2) choice. The schema above has no way to say
  "choice", so such a group is exported with an extra key "choice": true;
  read as a sequence it would wrongly demand every alternative.
* SEGMENTS[id] is ("sequence", fields); each field is
  ("<ID>_<n>", FIELDS["<ID>_<n>"], (min, max), "FIE"). The (min, max) pair
  is the field's optionality and repeatability in that segment (e.g.
  PID_3 (1, -1): required, repeating; 2.8.2 also has bounded maxima such as
  (0, 3)); it is exported as min/max. (0, 0) marks a field kept only for
  backward compatibility, which must not be valued (2.5.1: MSA-5, OBX-20..22;
  2.8.2: e.g. PID-2, PID-4, DG1-2). Fields are in ascending order, but
  2.8.2 leaves out withdrawn fields altogether (e.g. no PID-28, EVN-1,
  ERR-1, OBR-14/15/27), so "seq" is taken from the name's "_<n>" suffix and
  a segment's array may have gaps: look fields up by "seq", not by index.
  SEGMENTS["ANYHL7SEGMENT"] is a "choice" of every segment with no field
  data, i.e. a wildcard for "any segment"; it is kept as
  {"segment": "ANYHL7SEGMENT"} in structures and not listed in "segments".
* FIELDS["<ID>_<n>"] is (kind, struct, datatype, long_name, table,
  max_length): kind is "leaf" for a primitive datatype (struct None) or
  "sequence" for a composite one (struct = DATATYPES_STRUCTS[datatype]);
  table is "HL7nnnn" or None.
* max_length (the 6th element) is what core.py unpacks as
  `datatype, long_name, table, max_length = reference[2:]`; only
  validation.py reads it, as `if -1 < max_length < len(value)`, so -1 means
  "no maximum length known". In hl7apy 1.3.5 every field and component of
  2.3.1, 2.5.1 and 2.8.2 has -1 (the generator did not carry lengths), so
  "len" is always null in this output; a non-negative value would be
  exported as is.
* DATATYPES_STRUCTS[type] lists the components of a composite type:
  ("<TYPE>_<n>", DATATYPES["<TYPE>_<n>"], (0, 1), "CMP"), where
  DATATYPES["<TYPE>_<n>"] has the same 6-element layout as a field. The
  cardinality is always (0, 1), so "datatypes" entries carry no min/max;
  components are numbered 1..n without gaps.
  A type is composite exactly when it is a key of DATATYPES_STRUCTS.
* hl7apy gives no datatype (None -> "type": null) to OBX-20..22 and MSA-5 of
  2.5.1 (fields the 2.5.1 standard does not define or has withdrawn), and
  uses the type "varies" for OBX-5 and similar fields.

Structures exported
-------------------
STRUCTURES below: the list the project asked for, plus SIU_S13, SIU_S14,
SIU_S15, SIU_S16, SIU_S17 and SIU_S26, which corpus messages name in MSH-9-3
and which hl7apy defines (2.5.1, 2.8.2) with the same content as SIU_S12.
The other corpus messages need only listed structures: their MSH-9-3 is
absent or names no hl7apy structure, and their event maps (HL7 table 0354)
to a listed one: ADT A04/A08/A13 -> ADT_A01, A07 -> ADT_A06, A10/A11 ->
ADT_A09, A14/A28/A31 -> ADT_A05, A25-A27/A29 -> ADT_A21, A40/A41 ->
ADT_A39, A47 -> ADT_A30 (as of 2.5.1/2.6; hl7apy has no ADT_A30 from 2.7
on, so the 2.8 corpus message ADT-A47-01 has no 2.8.2 structure here), MDM
T05/T09 -> MDM_T01, T06/T10 -> MDM_T02, REF I14 -> REF_I12, PPR PC3 ->
PPR_PC1. RDE^O25^RDE_O25 (2.8) cannot be added: hl7apy has no RDE_O25 in
any exported version.

Skipped because hl7apy lacks them in that version:
  2.3.1: ADT_A05, ADT_A15, ADT_A21, ADT_A37, ADT_A52, ADT_A54, ADT_A60,
         ADT_A61, BAR_P12, DFT_P11, OMG_O19, OML_O21, OUL_R22, OUL_R23,
         OUL_R24, RDE_O11, RDS_O13, SIU_S13, SIU_S14, SIU_S15, SIU_S16,
         SIU_S17, SIU_S26
  2.5.1: none
  2.8.2: ADT_A30, ORM_O01
(The script prints the skipped ones to stderr on every run.)

"segments" holds every segment used by an exported structure plus
EXTRA_SEGMENTS; "datatypes" holds every composite datatype reachable from
those segments' fields, recursively through components.
"""

import importlib
import importlib.metadata
import json
import re
import sys

SOURCE = (
    "hl7apy 1.3.5 definitions of the HL7 v2 standard, "
    "exported by xtask/hl7apy_export.py"
)
VERSIONS = ["2.3.1", "2.5.1", "2.8.2"]
STRUCTURES = [
    "ACK", "ADT_A01", "ADT_A02", "ADT_A03", "ADT_A05", "ADT_A06", "ADT_A09",
    "ADT_A12", "ADT_A15", "ADT_A16", "ADT_A17", "ADT_A21", "ADT_A24",
    "ADT_A30", "ADT_A37", "ADT_A38", "ADT_A39", "ADT_A43", "ADT_A45",
    "ADT_A50", "ADT_A52", "ADT_A54", "ADT_A60", "ADT_A61", "BAR_P01",
    "BAR_P02", "BAR_P12", "DFT_P03", "DFT_P11", "MDM_T01", "MDM_T02",
    "OMG_O19", "OML_O21", "ORM_O01", "ORU_R01", "OUL_R22", "OUL_R23",
    "OUL_R24", "RDE_O11", "RDS_O13", "REF_I12", "SIU_S12", "VXU_V04",
    "PPR_PC1",
    # Named in MSH-9-3 by corpus messages (see the docstring).
    "SIU_S13", "SIU_S14", "SIU_S15", "SIU_S16", "SIU_S17", "SIU_S26",
]
EXTRA_SEGMENTS = ["MSH", "MSA", "ERR", "FHS", "FTS", "BHS", "BTS", "NTE", "OBX"]
ANY_SEGMENT = "ANYHL7SEGMENT"


def table_number(table):
    """'HL70001' -> '0001'; None stays None."""
    if table is None:
        return None
    match = re.fullmatch(r"HL7(\d{4})", table)
    if not match:
        raise ValueError(f"unexpected table reference {table!r}")
    return match.group(1)


def max_length(ref):
    """The 6th tuple element; -1 (hl7apy's 'unknown') becomes None."""
    return ref[5] if ref[5] >= 0 else None


def sequence_numbers(owner, children):
    """Position numbers from child names OWNER_<n>, checked to ascend."""
    numbers = []
    for child in children:
        match = re.fullmatch(re.escape(owner) + r"_(\d+)", child[0])
        if not match or (numbers and int(match.group(1)) <= numbers[-1]):
            raise ValueError(f"{owner}: unexpected child {child[0]} after {numbers}")
        numbers.append(int(match.group(1)))
    return numbers


def export_items(children, prefix, used_segments):
    """Structure/group children -> list of ITEMs, recording segment ids."""
    items = []
    for name, ref, (min_, max_), cls in children:
        if cls == "SEG":
            if name != ANY_SEGMENT:
                used_segments.add(name)
            items.append({"segment": name, "min": min_, "max": max_})
        elif cls == "GRP":
            if not name.startswith(prefix):
                raise ValueError(f"group {name} lacks prefix {prefix}")
            kind, grandchildren = ref
            item = {
                "group": name[len(prefix):],
                "min": min_,
                "max": max_,
                "children": export_items(grandchildren, prefix, used_segments),
            }
            if kind == "choice":
                item["choice"] = True
            items.append(item)
        else:
            raise ValueError(f"unexpected child class {cls} for {name}")
    return items


def export_segment(lib, seg_id):
    kind, fields = lib.SEGMENTS[seg_id]
    if kind != "sequence":
        raise ValueError(f"segment {seg_id} is a {kind}")
    out = []
    for seq, (_name, ref, (min_, max_), _cls) in zip(sequence_numbers(seg_id, fields), fields):
        out.append({
            "seq": seq,
            "name": ref[3],
            "type": ref[2],
            "table": table_number(ref[4]),
            "min": min_,
            "max": max_,
            "len": max_length(ref),
        })
    return out


def export_datatype(lib, type_name):
    components = lib.DATATYPES_STRUCTS[type_name]
    numbers = sequence_numbers(type_name, components)
    if numbers != list(range(1, len(components) + 1)):
        raise ValueError(f"datatype {type_name} has gaps: {numbers}")
    return [
        {"seq": seq, "name": ref[3], "type": ref[2], "table": table_number(ref[4])}
        for seq, (_name, ref, _card, _cls) in zip(numbers, components)
    ]


def export_version(version):
    lib = importlib.import_module("hl7apy.v" + version.replace(".", "_"))

    structures = {}
    used_segments = set(EXTRA_SEGMENTS)
    skipped = []
    for name in STRUCTURES:
        if name not in lib.MESSAGES:
            skipped.append(name)
            continue
        kind, children = lib.MESSAGES[name]
        if kind != "sequence":
            raise ValueError(f"message {name} is a {kind}")
        structures[name] = export_items(children, name + "_", used_segments)

    segments = {seg_id: export_segment(lib, seg_id) for seg_id in sorted(used_segments)}

    # Collect the composite types reachable from the fields (the output
    # order does not depend on the visiting order: keys are sorted).
    datatypes = {}
    pending = [f["type"] for fields in segments.values() for f in fields]
    while pending:
        type_name = pending.pop()
        if type_name in datatypes or type_name not in lib.DATATYPES_STRUCTS:
            continue
        datatypes[type_name] = export_datatype(lib, type_name)
        pending.extend(c["type"] for c in datatypes[type_name])

    return {"structures": structures, "segments": segments, "datatypes": datatypes}, skipped


def write_json(value, out, indent=0):
    """Sorted-key JSON with one leaf object (or scalar) per line.

    Objects holding no arrays are written compactly on one line; objects and
    arrays that hold arrays are broken over lines.
    """
    pad = "  " * indent
    if isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
        out.write("{\n")
        keys = sorted(value)
        for i, key in enumerate(keys):
            out.write(f"{pad}  {json.dumps(key)}: ")
            write_json(value[key], out, indent + 1)
            out.write(",\n" if i + 1 < len(keys) else "\n")
        out.write(pad + "}")
    elif isinstance(value, list) and value:
        out.write("[\n")
        for i, item in enumerate(value):
            out.write(pad + "  ")
            write_json(item, out, indent + 1)
            out.write(",\n" if i + 1 < len(value) else "\n")
        out.write(pad + "]")
    else:
        out.write(json.dumps(value, sort_keys=True, separators=(",", ":")))


def main():
    found = importlib.metadata.version("hl7apy")
    if found != "1.3.5":
        sys.exit(f"expected hl7apy 1.3.5, found {found}")
    versions = {}
    for version in VERSIONS:
        versions[version], skipped = export_version(version)
        print(f"{version}: skipped {', '.join(skipped) or 'none'}", file=sys.stderr)
    write_json({"source": SOURCE, "versions": versions}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
