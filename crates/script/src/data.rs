//! [`Data`]: the message a channel step works on, in one of four shapes.

use std::fmt;
use std::str::FromStr;

use hl7v2::{Message, MessageBuf};

/// The type of a message's data, as named in channel configuration.
///
/// Serialised (and parsed, case-insensitively) as `HL7V2`, `JSON`, `XML` or `RAW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataType {
    /// An HL7 v2 message.
    #[serde(rename = "HL7V2", alias = "hl7v2", alias = "Hl7v2")]
    Hl7v2,
    /// A JSON document.
    #[serde(rename = "JSON", alias = "json", alias = "Json")]
    Json,
    /// An XML document, kept as text.
    #[serde(rename = "XML", alias = "xml", alias = "Xml")]
    Xml,
    /// Any other text.
    #[serde(rename = "RAW", alias = "raw", alias = "Raw")]
    Raw,
}

impl DataType {
    /// The configuration name: `HL7V2`, `JSON`, `XML` or `RAW`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hl7v2 => "HL7V2",
            Self::Json => "JSON",
            Self::Xml => "XML",
            Self::Raw => "RAW",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of `HL7V2`, `JSON`, `XML`, `RAW`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data type {0:?} (expected HL7V2, JSON, XML or RAW)")]
pub struct UnknownDataType(pub String);

impl FromStr for DataType {
    type Err = UnknownDataType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        [Self::Hl7v2, Self::Json, Self::Xml, Self::Raw]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownDataType(s.to_owned()))
    }
}

/// Why bytes could not be read as a [`DataType`].
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The bytes are not a valid HL7 v2 message.
    #[error("not a valid HL7 v2 message: {0}")]
    Hl7(#[from] hl7v2::ParseError),
    /// The bytes are not valid JSON.
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// XML or RAW data must be UTF-8 text.
    #[error("{data_type} data is not UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// The type that was asked for.
        data_type: DataType,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
}

/// The working data of a channel step: what scripts see as `msg`, and what declarative steps
/// read and change.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// An HL7 v2 message, editable by path.
    Hl7v2(MessageBuf),
    /// A JSON document.
    Json(serde_json::Value),
    /// An XML document, as text (not parsed).
    Xml(String),
    /// Any other text.
    Raw(String),
}

impl Data {
    /// Which type this data is.
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Hl7v2(_) => DataType::Hl7v2,
            Self::Json(_) => DataType::Json,
            Self::Xml(_) => DataType::Xml,
            Self::Raw(_) => DataType::Raw,
        }
    }

    /// Reads bytes as the given type: HL7 v2 is parsed (with the delimiters, terminator and
    /// charset it declares, kept for [`encode`](Self::encode)), JSON is parsed, XML and RAW
    /// must be UTF-8.
    pub fn parse(data_type: DataType, bytes: &[u8]) -> Result<Self, DataError> {
        match data_type {
            DataType::Hl7v2 => Ok(Self::Hl7v2(MessageBuf::from(&Message::parse(bytes)?))),
            DataType::Json => Ok(Self::Json(serde_json::from_slice(bytes)?)),
            DataType::Xml | DataType::Raw => {
                let text = std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
                    data_type,
                    valid_up_to: e.valid_up_to(),
                })?;
                Ok(if data_type == DataType::Xml {
                    Self::Xml(text.to_owned())
                } else {
                    Self::Raw(text.to_owned())
                })
            }
        }
    }

    /// The bytes to send or store: HL7 v2 encoded in its own delimiters and charset, JSON
    /// compact, XML and RAW as their text.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Hl7v2(m) => m.encode(),
            // serialising a Value cannot fail: its map keys are strings
            Self::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Self::Xml(s) | Self::Raw(s) => s.as_bytes().to_vec(),
        }
    }

    /// The HL7 v2 message, if this is HL7 v2 data.
    pub fn as_hl7v2(&self) -> Option<&MessageBuf> {
        match self {
            Self::Hl7v2(m) => Some(m),
            _ => None,
        }
    }

    /// The HL7 v2 message to change, if this is HL7 v2 data.
    pub fn as_hl7v2_mut(&mut self) -> Option<&mut MessageBuf> {
        match self {
            Self::Hl7v2(m) => Some(m),
            _ => None,
        }
    }

    /// The JSON document, if this is JSON data.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Json(v) => Some(v),
            _ => None,
        }
    }

    /// The JSON document to change, if this is JSON data.
    pub fn as_json_mut(&mut self) -> Option<&mut serde_json::Value> {
        match self {
            Self::Json(v) => Some(v),
            _ => None,
        }
    }

    /// The text, if this is XML or RAW data.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Xml(s) | Self::Raw(s) => Some(s),
            _ => None,
        }
    }
}

impl From<MessageBuf> for Data {
    fn from(m: MessageBuf) -> Self {
        Self::Hl7v2(m)
    }
}

impl From<&Message<'_>> for Data {
    fn from(m: &Message<'_>) -> Self {
        Self::Hl7v2(MessageBuf::from(m))
    }
}

impl From<serde_json::Value> for Data {
    fn from(v: serde_json::Value) -> Self {
        Self::Json(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_type_names() {
        for (t, name) in [
            (DataType::Hl7v2, "HL7V2"),
            (DataType::Json, "JSON"),
            (DataType::Xml, "XML"),
            (DataType::Raw, "RAW"),
        ] {
            assert_eq!(t.to_string(), name);
            assert_eq!(name.parse::<DataType>().unwrap(), t);
            assert_eq!(name.to_lowercase().parse::<DataType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<DataType>(&json).unwrap(), t);
            let lower = format!("\"{}\"", name.to_lowercase());
            assert_eq!(serde_json::from_str::<DataType>(&lower).unwrap(), t);
        }
        assert!("HL7".parse::<DataType>().is_err());
    }

    #[test]
    fn parse_and_encode_round_trip() {
        let raw = b"MSH|^~\\&|A|B\r\nPID|1||X^Y~Z\r\n";
        let d = Data::parse(DataType::Hl7v2, raw).unwrap();
        assert_eq!(d.data_type(), DataType::Hl7v2);
        assert_eq!(d.encode(), raw);
        let d = Data::parse(DataType::Json, br#"{"a": [1, 2]}"#).unwrap();
        assert_eq!(d.encode(), br#"{"a":[1,2]}"#);
        let d = Data::parse(DataType::Xml, b"<a/>").unwrap();
        assert_eq!(d.as_text(), Some("<a/>"));
        assert!(matches!(
            Data::parse(DataType::Raw, b"ok\xFF"),
            Err(DataError::NotUtf8 { valid_up_to: 2, .. })
        ));
        assert!(matches!(
            Data::parse(DataType::Hl7v2, b"PID|1"),
            Err(DataError::Hl7(_))
        ));
        assert!(matches!(
            Data::parse(DataType::Json, b"{"),
            Err(DataError::Json(_))
        ));
    }
}
