//! Strict JSON for token headers and payloads: a duplicate member name anywhere is an error.
//!
//! serde_json keeps the last of two members with the same name, while other parsers keep the
//! first. A token with `"sub":"alice","sub":"admin"` could then mean different things to the
//! sidecar and to the app, so duplicates are rejected.
//!
//! Verification reads a few members with [`object_members`], which keeps only those and
//! borrows their text; [`parse_object`] builds the whole payload as a map, for the routes and
//! headers that need arbitrary claims.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON object, rejecting duplicate member names at any depth.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let StrictValue(value) =
        serde_json::from_slice(bytes).map_err(|err| format!("invalid JSON ({err})"))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err("not a JSON object".to_owned()),
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let StrictValue(value) = access.next_value()?;
            if map.contains_key(&name) {
                return Err(de::Error::custom(format_args!("duplicate member {name:?}")));
            }
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

/// A member's value, as far as the token checks need it. Strings borrow from the JSON text
/// when they contain no escape sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    String(Cow<'a, str>),
    Number(Number),
    /// An array whose items are all strings (possibly none).
    Strings(Vec<Cow<'a, str>>),
    /// Anything else: null, a boolean, an object, or an array containing a non-string. Its member
    /// names were still checked for duplicates.
    Other,
}

impl Field<'_> {
    /// Returns the text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::String(text) => Some(text),
            _ => None,
        }
    }
}

/// Parses `bytes` as one JSON object and returns the values of the members named in `names`,
/// in the same order, `None` for an absent member. As [`parse_object`] does, it rejects a
/// repeated member name at any depth; the other members are checked and dropped, so no map
/// is built.
pub fn object_members<'a, const N: usize>(
    bytes: &'a [u8],
    names: [&'static str; N],
) -> Result<[Option<Field<'a>>; N], String> {
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err("not a JSON object".to_owned());
    }
    let invalid = |err: serde_json::Error| format!("invalid JSON ({err})");
    // One check of the whole text is cheaper than serde_json's check of each string.
    let text =
        std::str::from_utf8(bytes).map_err(|err| format!("invalid JSON (not UTF-8: {err})"))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let members = deserializer
        .deserialize_map(MembersVisitor { names })
        .map_err(invalid)?;
    deserializer.end().map_err(invalid)?;
    Ok(members)
}

/// A visitor that collects the named members of an object and checks the rest.
struct MembersVisitor<const N: usize> {
    names: [&'static str; N],
}

impl<'de, const N: usize> Visitor<'de> for MembersVisitor<N> {
    type Value = [Option<Field<'de>>; N];

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut members: [Option<Field<'de>>; N] = [const { None }; N];
        // A named member that is already set is a repeat, so only the others are recorded.
        let mut others = SeenNames::new();
        while let Some(Text(name)) = access.next_key()? {
            match self
                .names
                .iter()
                .position(|expected| same_name(expected, &name))
            {
                Some(index) => {
                    if members[index].is_some() {
                        return Err(duplicate(&name));
                    }
                    members[index] = Some(access.next_value::<FieldValue>()?.0);
                }
                None => {
                    others.insert(name)?;
                    access.next_value::<Checked>()?;
                }
            }
        }
        Ok(members)
    }
}

/// Compares member names by length and first byte before the text. Most names already differ
/// there, so most comparisons make no call to `memcmp`.
fn same_name(expected: &str, name: &str) -> bool {
    expected.len() == name.len()
        && expected.as_bytes().first() == name.as_bytes().first()
        && expected == name
}

/// Builds the error for a member name that repeats in one object.
fn duplicate<E: de::Error>(name: &str) -> E {
    E::custom(format_args!("duplicate member {name:?}"))
}

/// The member names seen so far in one object, searched linearly because token objects are
/// small. Names without escapes go into a fixed array of borrowed text, with no allocation.
struct SeenNames<'a> {
    borrowed: [&'a str; SeenNames::BORROWED],
    count: usize,
    /// Names with escapes, and names beyond the array.
    more: Vec<Cow<'a, str>>,
}

impl<'a> SeenNames<'a> {
    const BORROWED: usize = 8;

    fn new() -> Self {
        SeenNames {
            borrowed: [""; SeenNames::BORROWED],
            count: 0,
            more: Vec::new(),
        }
    }

    /// Records `name`, or fails if the object already had a member of that name.
    fn insert<E: de::Error>(&mut self, name: Cow<'a, str>) -> Result<(), E> {
        let repeated = self.borrowed[..self.count]
            .iter()
            .any(|seen| same_name(seen, &name))
            || self.more.contains(&name);
        if repeated {
            return Err(duplicate(&name));
        }
        match name {
            Cow::Borrowed(text) if self.count < SeenNames::BORROWED => {
                self.borrowed[self.count] = text;
                self.count += 1;
            }
            other => self.more.push(other),
        }
        Ok(())
    }
}

/// A string read without copying when the JSON text contains it unescaped.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(value)))
    }
}

/// One member value, read as a [`Field`].
struct FieldValue<'a>(Field<'a>);

impl<'de> Deserialize<'de> for FieldValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor).map(FieldValue)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _value: bool) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }

    fn visit_i64<E>(self, value: i64) -> Result<Field<'de>, E> {
        Ok(Field::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Field<'de>, E> {
        Ok(Field::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Field<'de>, E> {
        Number::from_f64(value)
            .map(Field::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Field<'de>, E> {
        Ok(Field::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Field<'de>, E> {
        Ok(Field::String(Cow::Owned(value)))
    }

    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
        let mut strings = Vec::new();
        while let Some(item) = seq.next_element::<FieldValue>()? {
            match item.0 {
                Field::String(text) => strings.push(text),
                _ => {
                    // Not all strings: check the remaining items and keep nothing.
                    while seq.next_element::<Checked>()?.is_some() {}
                    return Ok(Field::Other);
                }
            }
        }
        Ok(Field::Strings(strings))
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Field<'de>, A::Error> {
        CheckedVisitor.visit_map(access).map(|Checked| Field::Other)
    }
}

/// Any JSON value, checked for duplicate member names and otherwise dropped.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _value: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _value: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _value: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _value: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _value: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Checked, A::Error> {
        let mut seen = SeenNames::new();
        while let Some(Text(name)) = access.next_key()? {
            seen.insert(name)?;
            access.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_parses() {
        let map = parse_object(br#"{"a":1,"b":{"c":[true,null,"x"]}}"#).expect("valid");
        assert_eq!(map["a"], Value::from(1));
        assert_eq!(map["b"]["c"][2], Value::from("x"));
    }

    #[test]
    fn duplicate_member_rejected() {
        let err = parse_object(br#"{"sub":"alice","sub":"admin"}"#).expect_err("duplicate");
        assert!(err.contains("duplicate member \"sub\""), "{err}");
    }

    #[test]
    fn nested_duplicate_rejected() {
        assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse_object(br#"{"a":[{"b":1,"b":2}]}"#).is_err());
    }

    #[test]
    fn non_object_rejected() {
        assert_eq!(parse_object(b"[1]"), Err("not a JSON object".to_owned()));
        assert_eq!(parse_object(b"\"x\""), Err("not a JSON object".to_owned()));
    }

    #[test]
    fn members_found_and_borrowed() {
        let text = br#"{"iss":"a","exp":5,"aud":["x","y"],"other":{"b":[1]},"sub":"\u0041"}"#;
        let [iss, exp, aud, sub, missing] =
            object_members(text, ["iss", "exp", "aud", "sub", "nbf"]).expect("valid");
        assert!(matches!(iss, Some(Field::String(Cow::Borrowed("a")))));
        assert_eq!(exp, Some(Field::Number(5.into())));
        assert_eq!(aud, Some(Field::Strings(vec!["x".into(), "y".into()])));
        assert_eq!(sub.as_ref().and_then(Field::as_str), Some("A"));
        assert_eq!(missing, None);
    }

    #[test]
    fn members_other_values() {
        let text = br#"{"a":null,"b":true,"c":[1,"x"],"d":{"e":1},"f":[]}"#;
        let [a, b, c, d, f] = object_members(text, ["a", "b", "c", "d", "f"]).expect("valid");
        assert_eq!(a, Some(Field::Other));
        assert_eq!(b, Some(Field::Other));
        assert_eq!(c, Some(Field::Other));
        assert_eq!(d, Some(Field::Other));
        assert_eq!(f, Some(Field::Strings(Vec::new())));
    }

    #[test]
    fn members_duplicates_rejected() {
        let cases: [&[u8]; 9] = [
            br#"{"sub":"alice","sub":"admin"}"#,
            br#"{"x":1,"x":2}"#,
            br#"{"\u0078":1,"x":2}"#,
            br#"{"x":1,"\u0078":2}"#,
            br#"{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"i":2}"#,
            br#"{"x":{"b":1,"b":2}}"#,
            br#"{"x":[{"b":1,"b":2}]}"#,
            br#"{"sub":{"b":1,"b":2}}"#,
            br#"{"sub":["a",{"b":1,"b":2}]}"#,
        ];
        for text in cases {
            let err = object_members(text, ["sub"]).expect_err("duplicate");
            assert!(err.contains("duplicate member"), "{err}");
        }
    }

    #[test]
    fn members_need_one_object() {
        for text in [&b"[1]"[..], b"\"x\"", b"", b" 1"] {
            assert_eq!(
                object_members(text, ["a"]),
                Err("not a JSON object".to_owned())
            );
        }
        assert!(object_members(br#"{"a":1} x"#, ["a"]).is_err());
        assert!(object_members(br#"{"a":1}{}"#, ["a"]).is_err());
        assert!(object_members(br#"{"a":1"#, ["a"]).is_err());
    }

    #[test]
    fn trailing_data_rejected() {
        assert!(parse_object(br#"{"a":1} x"#).is_err());
        assert!(parse_object(br#"{"a":1}{}"#).is_err());
    }
}
