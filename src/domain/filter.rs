use serde_json::{Map, Value};

use super::{FieldError, NodeId, RegionMap, Text, ZipPrefix};

/// Largest page a client may ask for; bigger pages belong in an export.
pub const MAX_PAGE_SIZE: u32 = 500;
const DEFAULT_PAGE_SIZE: u32 = 50;
/// Deep offsets cost a scan on every node; past this, narrow the filter.
const MAX_OFFSET: u64 = 1_000_000;

/// A parsed `filter-records` query. Parameter names are the seed's
/// (`zipRangeMin`, `zipRangeMax`, `city`, `state`, `region`) plus `limit` and
/// `offset`; an empty value means "not given", as the seed's form sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFilter {
    pub zip_min: Option<ZipPrefix>,
    pub zip_max: Option<ZipPrefix>,
    /// Case-insensitive substring of the city (plain text, never a pattern).
    pub city: Option<Text>,
    pub state: Option<Text>,
    pub region: Option<NodeId>,
    pub limit: u32,
    pub offset: u64,
}

impl RecordFilter {
    pub const PARAMS: [&'static str; 7] = [
        "zipRangeMin",
        "zipRangeMax",
        "city",
        "state",
        "region",
        "limit",
        "offset",
    ];

    /// The parameters that are numbers (a JSON body may send them as
    /// numbers or as strings of digits).
    const NUMERIC: [&'static str; 4] = ["zipRangeMin", "zipRangeMax", "limit", "offset"];

    /// From string parameters (a query string or a form).
    pub fn parse(
        get: impl Fn(&str) -> Option<String>,
        regions: &RegionMap,
    ) -> Result<RecordFilter, FieldError> {
        let param = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let zip = |name: &str| {
            param(name)
                .map(|v| ZipPrefix::parse_str(name, &v))
                .transpose()
        };
        let text = |name: &str| param(name).map(|v| Text::parse(name, &v)).transpose();
        let number = |name: &str, min: u64, max: u64| -> Result<Option<u64>, FieldError> {
            param(name)
                .map(|v| match v.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(FieldError::new(
                        name,
                        format!("{name} must be a whole number from {min} to {max}"),
                    )),
                })
                .transpose()
        };

        let zip_min = zip("zipRangeMin")?;
        let zip_max = zip("zipRangeMax")?;
        if let (Some(min), Some(max)) = (zip_min, zip_max)
            && min > max
        {
            return Err(FieldError::new(
                "zipRangeMin",
                format!("zipRangeMin ({min}) must not be greater than zipRangeMax ({max})"),
            ));
        }
        let region = match param("region") {
            None => None,
            Some(r) => Some(regions.get(r.trim()).map(|r| r.id.clone()).ok_or_else(|| {
                let known: Vec<_> = regions.nodes().map(NodeId::as_str).collect();
                FieldError::new(
                    "region",
                    format!("unknown region {r:?}; known: {}", known.join(", ")),
                )
            })?),
        };
        let limit =
            number("limit", 1, u64::from(MAX_PAGE_SIZE))?.map_or(DEFAULT_PAGE_SIZE, |n| n as u32);
        Ok(RecordFilter {
            zip_min,
            zip_max,
            city: text("city")?,
            state: text("state")?,
            region,
            limit,
            offset: number("offset", 0, MAX_OFFSET)?.unwrap_or(0),
        })
    }

    /// From a JSON object (the seed's `POST /filter-records`): numbers and
    /// strings are both accepted for every parameter.
    pub fn parse_json(
        object: &Map<String, Value>,
        regions: &RegionMap,
    ) -> Result<RecordFilter, FieldError> {
        for name in Self::PARAMS {
            let numeric = Self::NUMERIC.contains(&name);
            match object.get(name) {
                None | Some(Value::Null | Value::String(_)) => {}
                Some(Value::Number(_)) if numeric => {}
                Some(_) if numeric => {
                    return Err(FieldError::new(
                        name,
                        format!("{name} must be a number or a string of digits"),
                    ));
                }
                Some(_) => {
                    return Err(FieldError::new(name, format!("{name} must be a string")));
                }
            }
        }
        Self::parse(
            |name| match object.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
            regions,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<RecordFilter, FieldError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        RecordFilter::parse(|k| map.get(k).cloned(), &RegionMap::default_regions())
    }

    #[test]
    fn empty_query_means_everything_first_page() {
        let f = parse(&[("city", ""), ("zipRangeMin", " ")]).unwrap();
        assert_eq!(f.zip_min, None);
        assert_eq!(f.city, None);
        assert_eq!((f.limit, f.offset), (DEFAULT_PAGE_SIZE, 0));
    }

    #[test]
    fn parses_every_parameter() {
        let f = parse(&[
            ("zipRangeMin", "1000"),
            ("zipRangeMax", "2000"),
            ("city", " Sao "),
            ("state", "SP"),
            ("region", "region_2"),
            ("limit", "10"),
            ("offset", "20"),
        ])
        .unwrap();
        assert_eq!(f.zip_min, Some(ZipPrefix::new(1000)));
        assert_eq!(f.city.unwrap().as_str(), "Sao");
        assert_eq!(f.region.unwrap().as_str(), "region_2");
        assert_eq!((f.limit, f.offset), (10, 20));
    }

    #[test]
    fn names_the_bad_parameter() {
        for (pairs, field) in [
            (vec![("zipRangeMin", "abc")], "zipRangeMin"),
            (
                vec![("zipRangeMin", "5"), ("zipRangeMax", "4")],
                "zipRangeMin",
            ),
            (vec![("region", "region_9")], "region"),
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "501")], "limit"),
            (vec![("offset", "-1")], "offset"),
        ] {
            assert_eq!(parse(&pairs).unwrap_err().field, field, "{pairs:?}");
        }
    }

    #[test]
    fn json_accepts_numbers_and_strings() {
        let regions = RegionMap::default_regions();
        let body = json!({"zipRangeMin": 1000, "zipRangeMax": "2000", "city": null});
        let f = RecordFilter::parse_json(body.as_object().unwrap(), &regions).unwrap();
        assert_eq!(f.zip_max, Some(ZipPrefix::new(2000)));
        let bad = json!({"city": ["x"]});
        let err = RecordFilter::parse_json(bad.as_object().unwrap(), &regions).unwrap_err();
        assert_eq!(err.field, "city");
    }
}
