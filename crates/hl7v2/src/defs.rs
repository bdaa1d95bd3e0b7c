//! Types of the HL7 v2 definitions generated from data files (see `xtask codegen`): message
//! structures with their groups, segment fields, composite data types and coded tables.

/// How often an item may occur; `None` as maximum means unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cardinality {
    /// Minimum occurrences (0 = optional).
    pub min: u16,
    /// Maximum occurrences, `None` = unbounded.
    pub max: Option<u16>,
}

impl Cardinality {
    /// Whether at least one occurrence is required.
    pub fn required(self) -> bool {
        self.min > 0
    }

    /// Whether more than one occurrence is allowed.
    pub fn repeats(self) -> bool {
        self.max.is_none_or(|m| m > 1)
    }
}

/// One entry of a message structure: a segment or a group of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A segment, by id.
    Segment {
        /// Segment id.
        id: &'static str,
        /// How often it occurs here.
        card: Cardinality,
    },
    /// A named group, e.g. `ORDER_OBSERVATION`.
    Group {
        /// Group name without the structure prefix.
        name: &'static str,
        /// How often it occurs here.
        card: Cardinality,
        /// A choice holds exactly one of its entries (e.g. ORM_O01's OBR | RQD | RQ1 | RXO |
        /// ODS | ODT); a sequence holds its entries in order.
        choice: bool,
        /// Its entries.
        items: &'static [Item],
    },
}

impl Item {
    /// The item's cardinality.
    pub fn card(&self) -> Cardinality {
        match self {
            Self::Segment { card, .. } | Self::Group { card, .. } => *card,
        }
    }

    /// Whether a segment with this id can be the first segment of this item.
    pub fn can_start_with(&self, id: &str) -> bool {
        match self {
            Self::Segment { id: s, .. } => segment_matches(s, id),
            Self::Group {
                items,
                choice: true,
                ..
            } => items.iter().any(|i| i.can_start_with(id)),
            Self::Group { items, .. } => {
                for it in *items {
                    if it.can_start_with(id) {
                        return true;
                    }
                    if it.card().required() {
                        return false;
                    }
                }
                false
            }
        }
    }

    /// Whether this item's very first entry is this segment (no optional entries skipped).
    pub fn starts_directly_with(&self, id: &str) -> bool {
        match self {
            Self::Segment { id: s, .. } => segment_matches(s, id),
            Self::Group {
                items,
                choice: true,
                ..
            } => items.iter().any(|i| i.starts_directly_with(id)),
            Self::Group { items, .. } => items.first().is_some_and(|i| i.starts_directly_with(id)),
        }
    }

    /// Whether a segment with this id occurs anywhere in this item.
    pub fn contains(&self, id: &str) -> bool {
        match self {
            Self::Segment { id: s, .. } => segment_matches(s, id),
            Self::Group { items, .. } => items.iter().any(|i| i.contains(id)),
        }
    }
}

/// The wildcard some structures use (v2.8.2 PPR_PC1): any segment fits there.
pub const ANY_SEGMENT: &str = "ANYHL7SEGMENT";

fn segment_matches(def: &str, id: &str) -> bool {
    def == id || def == ANY_SEGMENT
}

/// A message structure such as `ORU_R01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructureDef {
    /// Structure id (MSH-9-3).
    pub id: &'static str,
    /// Top-level entries in order.
    pub items: &'static [Item],
}

/// One field of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Field number (1-based).
    pub seq: u16,
    /// Field name, e.g. `PATIENT_NAME`.
    pub name: &'static str,
    /// Data type, e.g. `XPN`.
    pub datatype: &'static str,
    /// Coded table, e.g. 1 for HL7 table 0001.
    pub table: Option<u16>,
    /// Required (min 1) and repeatability.
    pub card: Cardinality,
    /// Maximum length, where the definitions carry one.
    pub len: Option<u32>,
}

/// A segment definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentDef {
    /// Segment id.
    pub id: &'static str,
    /// Fields in order.
    pub fields: &'static [FieldDef],
}

/// One component of a composite data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentDef {
    /// Component number (1-based).
    pub seq: u16,
    /// Component name.
    pub name: &'static str,
    /// Data type.
    pub datatype: &'static str,
    /// Coded table.
    pub table: Option<u16>,
}

/// A composite data type such as `XPN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatatypeDef {
    /// Data type id.
    pub id: &'static str,
    /// Components in order.
    pub components: &'static [ComponentDef],
}

/// The definitions of one HL7 v2 version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionDefs {
    /// Version, e.g. `2.5.1`.
    pub version: &'static str,
    /// Message structures, sorted by id.
    pub structures: &'static [StructureDef],
    /// Segments, sorted by id.
    pub segments: &'static [SegmentDef],
    /// Composite data types, sorted by id.
    pub datatypes: &'static [DatatypeDef],
}

impl VersionDefs {
    /// A structure by id.
    pub fn structure(&self, id: &str) -> Option<&'static StructureDef> {
        self.structures
            .binary_search_by(|s| s.id.cmp(id))
            .ok()
            .map(|i| &self.structures[i])
    }

    /// A segment by id.
    pub fn segment(&self, id: &str) -> Option<&'static SegmentDef> {
        self.segments
            .binary_search_by(|s| s.id.cmp(id))
            .ok()
            .map(|i| &self.segments[i])
    }

    /// A composite data type by id.
    pub fn datatype(&self, id: &str) -> Option<&'static DatatypeDef> {
        self.datatypes
            .binary_search_by(|s| s.id.cmp(id))
            .ok()
            .map(|i| &self.datatypes[i])
    }
}

/// One code of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The code.
    pub code: &'static str,
    /// Its display text.
    pub display: &'static str,
}

/// An HL7 table, e.g. 0001 Administrative Sex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// Table number.
    pub id: u16,
    /// Table name.
    pub name: &'static str,
    /// Codes, sorted.
    pub codes: &'static [Code],
}

impl TableDef {
    /// Whether the table holds this code.
    pub fn contains(&self, code: &str) -> bool {
        self.codes.binary_search_by(|c| c.code.cmp(code)).is_ok()
    }
}
