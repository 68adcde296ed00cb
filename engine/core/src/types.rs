//! Port types and which connections they allow.

use serde::{Serialize, Serializer};
use std::fmt;

/// The type of a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortType {
    Bool,
    Int,
    Float,
    String,
    Path,
    /// Any tensor (the family).
    Tensor,
    /// A tensor with a meaning: `Z`, `W`, `WPlus`, `Image`, `Features`, `Direction`, `Mask`, or a
    /// name a plugin introduces.
    Semantic(String),
    /// An opaque plugin object, `object:<type name>`.
    Object(String),
    /// Anything; checked by the node at run time.
    Any,
}

/// The semantic tensor types the host documents (plugins may add their own names).
pub const KNOWN_SEMANTIC_TYPES: &[&str] =
    &["Z", "W", "WPlus", "Image", "Features", "Direction", "Mask"];

impl PortType {
    /// Parses a type name as written in descriptors.
    pub fn parse(s: &str) -> Result<PortType, String> {
        Ok(match s {
            "bool" => PortType::Bool,
            "int" => PortType::Int,
            "float" => PortType::Float,
            "string" => PortType::String,
            "path" => PortType::Path,
            "Tensor" => PortType::Tensor,
            "any" => PortType::Any,
            _ => {
                if let Some(name) = s.strip_prefix("object:") {
                    if name.is_empty() {
                        return Err("object type needs a name (object:<name>)".into());
                    }
                    PortType::Object(name.to_owned())
                } else if s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    PortType::Semantic(s.to_owned())
                } else {
                    return Err(format!(
                        "unknown port type {s:?} (scalar types are lower case, tensor types \
                         start with a capital, objects are object:<name>)"
                    ));
                }
            }
        })
    }

    /// True for tensor types.
    pub fn is_tensor(&self) -> bool {
        matches!(self, PortType::Tensor | PortType::Semantic(_))
    }

    /// Can an output of type `from` feed an input of type `self`?
    pub fn accepts(&self, from: &PortType) -> bool {
        use PortType::*;
        match (self, from) {
            (Any, _) | (_, Any) => true,
            (a, b) if a == b => true,
            (Tensor, b) => b.is_tensor(),
            // A generic tensor output may carry the semantic type; checked at run time.
            (Semantic(_), Tensor) => true,
            (Float, Int) => true,
            (Path, String) | (String, Path) => true,
            _ => false,
        }
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortType::Bool => f.write_str("bool"),
            PortType::Int => f.write_str("int"),
            PortType::Float => f.write_str("float"),
            PortType::String => f.write_str("string"),
            PortType::Path => f.write_str("path"),
            PortType::Tensor => f.write_str("Tensor"),
            PortType::Semantic(s) => f.write_str(s),
            PortType::Object(s) => write!(f, "object:{s}"),
            PortType::Any => f.write_str("any"),
        }
    }
}

impl Serialize for PortType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_rules() {
        let t = |s: &str| PortType::parse(s).unwrap();
        assert!(t("Tensor").accepts(&t("Image")));
        assert!(t("Image").accepts(&t("Image")));
        assert!(!t("Image").accepts(&t("WPlus")));
        assert!(!t("Tensor").accepts(&t("float")));
        assert!(t("float").accepts(&t("int")));
        assert!(!t("int").accepts(&t("float")));
        assert!(t("object:stylegan.Generator").accepts(&t("object:stylegan.Generator")));
        assert!(!t("object:stylegan.Generator").accepts(&t("object:other.Thing")));
        assert!(t("any").accepts(&t("object:x")));
        assert!(PortType::parse("tensor").is_err());
        assert!(PortType::parse("object:").is_err());
        assert_eq!(t("object:a.B").to_string(), "object:a.B");
    }
}
