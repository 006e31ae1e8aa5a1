use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::FieldError;

/// A trimmed, non-empty piece of user text without control characters, at
/// most [`Text::MAX_CHARS`] characters long.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(field: &str, raw: &str) -> Result<Text, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new(field, format!("{field} must not be empty")));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("{field} must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                format!("{field} must not contain control characters"),
            ));
        }
        Ok(Text(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The customer's id: the `_id` of its documents and the key of its hints.
pub type CustomerId = Text;

/// A zip-code prefix. The seed's form sent it as a string ("01310"), its API
/// as a number; both parse to the same integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ZipPrefix(u32);

impl ZipPrefix {
    /// Nine digits always fit in a u32 and are far more than any zip prefix.
    pub const MAX_DIGITS: usize = 9;

    pub fn new(value: u32) -> Self {
        ZipPrefix(value)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// From text: optional surrounding spaces, then 1-9 ASCII digits.
    pub fn parse_str(field: &str, raw: &str) -> Result<ZipPrefix, FieldError> {
        let digits = raw.trim();
        let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if !all_digits {
            return Err(FieldError::new(
                field,
                format!("{field} must be a whole number of digits, got {raw:?}"),
            ));
        }
        if digits.len() > Self::MAX_DIGITS {
            return Err(FieldError::new(
                field,
                format!("{field} must have at most {} digits", Self::MAX_DIGITS),
            ));
        }
        digits
            .parse()
            .map(ZipPrefix)
            .map_err(|_| FieldError::new(field, format!("{field} is not a valid number")))
    }

    /// From JSON: a non-negative integer or a string of digits.
    pub fn parse_json(field: &str, value: &Value) -> Result<ZipPrefix, FieldError> {
        match value {
            Value::String(s) => Self::parse_str(field, s),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n <= 999_999_999)
                .map(ZipPrefix)
                .ok_or_else(|| {
                    FieldError::new(
                        field,
                        format!("{field} must be a non-negative whole number of at most 9 digits"),
                    )
                }),
            other => Err(FieldError::new(
                field,
                format!(
                    "{field} must be an integer or a string of digits, got {}",
                    json_kind(other)
                ),
            )),
        }
    }
}

impl fmt::Display for ZipPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A customer record as clients send it, parsed. Serializes to the five
/// fields of the seed's schema, the zip as an integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub customer_id: CustomerId,
    pub customer_unique_id: Text,
    pub customer_zip_code_prefix: ZipPrefix,
    pub customer_city: Text,
    pub customer_state: Text,
}

impl Customer {
    pub const FIELDS: [&'static str; 5] = [
        "customer_id",
        "customer_unique_id",
        "customer_zip_code_prefix",
        "customer_city",
        "customer_state",
    ];

    /// Parses a JSON object; the first bad field, in schema order, is
    /// reported. Unknown fields are ignored (the seed's form sent extras).
    pub fn parse(object: &Map<String, Value>) -> Result<Customer, FieldError> {
        Ok(Customer {
            customer_id: text_field(object, "customer_id")?,
            customer_unique_id: text_field(object, "customer_unique_id")?,
            customer_zip_code_prefix: {
                let field = "customer_zip_code_prefix";
                ZipPrefix::parse_json(field, required(object, field)?)?
            },
            customer_city: text_field(object, "customer_city")?,
            customer_state: text_field(object, "customer_state")?,
        })
    }

    /// Parses the same fields given as form text (every value a string).
    pub fn parse_form(get: impl Fn(&str) -> Option<String>) -> Result<Customer, FieldError> {
        let object: Map<String, Value> = Self::FIELDS
            .iter()
            .filter_map(|f| get(f).map(|v| ((*f).to_owned(), Value::String(v))))
            .collect();
        Self::parse(&object)
    }
}

fn required<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a Value, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, format!("{field} is required"))),
        Some(v) => Ok(v),
    }
}

fn text_field(object: &Map<String, Value>, field: &str) -> Result<Text, FieldError> {
    match required(object, field)? {
        Value::String(s) => Text::parse(field, s),
        other => Err(FieldError::new(
            field,
            format!("{field} must be a string, got {}", json_kind(other)),
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Customer, FieldError> {
        Customer::parse(v.as_object().expect("object"))
    }

    fn good() -> Value {
        json!({
            "customer_id": " c1 ",
            "customer_unique_id": "u1",
            "customer_zip_code_prefix": "01310",
            "customer_city": "sao paulo",
            "customer_state": "SP"
        })
    }

    #[test]
    fn parses_and_trims() {
        let c = parse(good()).unwrap();
        assert_eq!(c.customer_id.as_str(), "c1");
        assert_eq!(c.customer_zip_code_prefix, ZipPrefix::new(1310));
        let mut v = good();
        v["customer_zip_code_prefix"] = json!(1310);
        assert_eq!(parse(v).unwrap(), c);
        assert_eq!(
            serde_json::to_value(&c).unwrap()["customer_zip_code_prefix"],
            json!(1310)
        );
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            ("customer_id", json!(null), "required"),
            ("customer_id", json!("   "), "empty"),
            ("customer_id", json!(7), "must be a string"),
            ("customer_unique_id", json!(["x"]), "must be a string"),
            ("customer_zip_code_prefix", json!("12a"), "digits"),
            ("customer_zip_code_prefix", json!(-5), "non-negative"),
            ("customer_zip_code_prefix", json!(1.5), "whole number"),
            ("customer_zip_code_prefix", json!("1234567890"), "at most 9"),
            (
                "customer_zip_code_prefix",
                json!(true),
                "integer or a string",
            ),
            ("customer_city", json!("a\u{0}b"), "control"),
            ("customer_state", json!("x".repeat(201)), "at most 200"),
        ];
        for (field, value, words) in cases {
            let mut v = good();
            v[field] = value.clone();
            let err = parse(v).unwrap_err();
            assert_eq!(err.field, field, "{value}");
            assert!(err.message.contains(words), "{value}: {}", err.message);
        }
        let mut v = good();
        v.as_object_mut().unwrap().remove("customer_state");
        assert_eq!(parse(v).unwrap_err().field, "customer_state");
    }

    #[test]
    fn form_values_parse_the_same_way() {
        let c = Customer::parse_form(|f| good()[f].as_str().map(str::to_owned)).unwrap();
        assert_eq!(c, parse(good()).unwrap());
        let err = Customer::parse_form(|_| None).unwrap_err();
        assert_eq!(err.field, "customer_id");
    }
}
