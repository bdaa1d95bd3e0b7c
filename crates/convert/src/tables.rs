//! The shapes of the generated IG tables and their lookups.

use std::cell::Cell;

use crate::generated::{
    messages::MESSAGE_MAPS, segments::DATATYPE_MAPS, segments::SEGMENT_MAPS, vocab::CONCEPT_MAPS,
};

/// One row of a vocabulary concept map: a v2 table code and the FHIR coding it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concept {
    /// The v2 code, e.g. `F`.
    pub v2_code: &'static str,
    /// The v2 table, e.g. `HL70001`.
    pub v2_system: &'static str,
    /// The FHIR code, e.g. `female`.
    pub code: &'static str,
    /// The FHIR display.
    pub display: &'static str,
    /// The FHIR system URI.
    pub system: &'static str,
}

/// A vocabulary concept map of the IG, e.g. `AdministrativeSex`.
#[derive(Debug)]
pub struct ConceptMap {
    /// The map's name.
    pub name: &'static str,
    /// Its rows, in the IG's order.
    pub concepts: &'static [Concept],
}

impl ConceptMap {
    /// The FHIR coding of a v2 code (exact match first, then case-insensitive).
    pub fn lookup(&self, v2_code: &str) -> Option<&'static Concept> {
        // most codes are a few letters: the length and first byte settle most rows without
        // a call to memcmp
        let first = v2_code.as_bytes().first();
        self.concepts
            .iter()
            .find(|c| {
                c.v2_code.len() == v2_code.len()
                    && c.v2_code.as_bytes().first() == first
                    && c.v2_code == v2_code
            })
            .or_else(|| {
                self.concepts
                    .iter()
                    .find(|c| c.v2_code.eq_ignore_ascii_case(v2_code))
            })
    }
}

/// One row of a segment or data type map: a v2 field (or component) and its FHIR target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMap {
    /// The field or component, e.g. `PID-5` or `XPN.1`.
    pub field: &'static str,
    /// Its v2 data type.
    pub v2_type: &'static str,
    /// The IG's condition (`IF PID-11 IS NOT VALUED`), empty when unconditional.
    pub condition: &'static str,
    /// The FHIR attribute path, e.g. `name[1]`; empty when the IG does not map the field.
    pub fhir_path: &'static str,
    /// The FHIR data type.
    pub fhir_type: &'static str,
    /// The data type map to apply, e.g. `XPN[HumanName]`.
    pub datatype_map: &'static str,
    /// The vocabulary map to apply, e.g. `AdministrativeSex`.
    pub vocabulary: &'static str,
    /// A fixed value the IG assigns.
    pub assignment: &'static str,
}

/// A segment map (`PID[Patient]`) or data type map (`XPN[HumanName]`) of the IG.
#[derive(Debug)]
pub struct SegmentMap {
    /// The map's name.
    pub name: &'static str,
    /// Its rows, in the IG's order.
    pub fields: &'static [FieldMap],
}

impl SegmentMap {
    /// The rows of one field (`PID-5`).
    pub fn field<'s>(&'s self, field: &'s str) -> impl Iterator<Item = &'static FieldMap> + 's {
        self.fields.iter().filter(move |f| f.field == field)
    }
}

/// One segment row of a message map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRow {
    /// The segment's place in the structure, e.g. `ADT_A01.NEXT_OF_KIN.NK1`.
    pub identifier: &'static str,
    /// The segment id.
    pub segment: &'static str,
    /// The IG's condition, empty when unconditional.
    pub condition: &'static str,
    /// The resource made, e.g. `Patient[1]`; empty when the segment is not mapped.
    pub target: &'static str,
    /// The segment map used, e.g. `PID[Patient]`.
    pub segment_map: &'static str,
}

/// A message map of the IG, e.g. `ADT_A01`.
#[derive(Debug)]
pub struct MessageMap {
    /// The message structure.
    pub structure: &'static str,
    /// Its segment rows, in the IG's order.
    pub rows: &'static [MessageRow],
}

/// Slots of the per-thread memo of [`concept_map`].
const RECENT_SLOTS: usize = 16;

thread_local! {
    /// The maps found last, by the address and length of the name asked for: callers name
    /// maps with string literals, so a call finds its map again after one comparison instead
    /// of a binary search through a hundred names spread over the tables (each probe a likely
    /// cache miss). A hit is checked against the map's name, so a name at a reused address
    /// cannot find the wrong map.
    static RECENT: [Cell<(usize, usize, u16)>; RECENT_SLOTS] =
        const { [const { Cell::new((0, 0, u16::MAX)) }; RECENT_SLOTS] };
}

/// The vocabulary concept map named `name` (`AdministrativeSex`).
pub fn concept_map(name: &str) -> Option<&'static ConceptMap> {
    let at = name.as_ptr() as usize;
    let slot = (at >> 3 ^ at >> 11) % RECENT_SLOTS;
    let recent = RECENT
        .try_with(|r| r[slot].get())
        .ok()
        .filter(|&(a, len, _)| a == at && len == name.len())
        .and_then(|(_, _, i)| CONCEPT_MAPS.get(usize::from(i)))
        .filter(|m| m.name == name);
    if recent.is_some() {
        return recent;
    }
    let i = CONCEPT_MAPS
        .binary_search_by(|m| name_cmp(m.name, name))
        .ok()?;
    if let Ok(i16) = u16::try_from(i) {
        let _ = RECENT.try_with(|r| r[slot].set((at, name.len(), i16)));
    }
    CONCEPT_MAPS.get(i)
}

/// The FHIR coding the concept map `map` gives the v2 code `code`.
pub fn map_code(map: &str, code: &str) -> Option<&'static Concept> {
    concept_map(map)?.lookup(code)
}

/// The segment map named `name` (`PID[Patient]`).
pub fn segment_map(name: &str) -> Option<&'static SegmentMap> {
    SEGMENT_MAPS
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &SEGMENT_MAPS[i])
}

/// The data type map named `name` (`XPN[HumanName]`).
pub fn datatype_map(name: &str) -> Option<&'static SegmentMap> {
    DATATYPE_MAPS
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &DATATYPE_MAPS[i])
}

/// The message map of a structure (`ADT_A01`).
pub fn message_map(structure: &str) -> Option<&'static MessageMap> {
    MESSAGE_MAPS
        .binary_search_by(|m| m.structure.cmp(structure))
        .ok()
        .map(|i| &MESSAGE_MAPS[i])
}

/// Every segment map.
pub fn segment_maps() -> &'static [SegmentMap] {
    SEGMENT_MAPS
}

/// Every message map.
pub fn message_maps() -> &'static [MessageMap] {
    MESSAGE_MAPS
}

/// Every concept map.
pub fn concept_maps() -> &'static [ConceptMap] {
    CONCEPT_MAPS
}

/// `a.cmp(b)`, deciding on the first byte where it can (a lookup compares a dozen names).
fn name_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}
