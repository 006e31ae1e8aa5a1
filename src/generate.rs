//! `regiondb gen`: realistic customer rows shaped like the public Olist
//! e-commerce data set's customers file, for imports, demos and tests.
//!
//! Ids are 32 hexadecimal digits, as in the data set; each row's city and
//! state are a real Brazilian pair, and its zip prefix (five digits, with
//! leading zeros, quoted like the original) lies in that state's CEP range,
//! so the rows spread over every default region (São Paulo's prefixes start
//! at 01000, the far south's end at 99999). A seed makes the output
//! reproducible.

use std::io::{self, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The Olist customers file's header.
pub const HEADER: &str =
    "customer_id,customer_unique_id,customer_zip_code_prefix,customer_city,customer_state";

/// A state, its CEP prefix range (inclusive, five digits), some of its
/// cities, and a weight (roughly its share of the data set's customers).
struct State {
    code: &'static str,
    zips: (u32, u32),
    cities: &'static [&'static str],
    weight: u32,
}

#[rustfmt::skip]
const STATES: &[State] = &[
    State { code: "SP", zips: (1000, 19999), weight: 42, cities: &["sao paulo", "campinas", "guarulhos", "santo andre", "sao bernardo do campo", "osasco", "sorocaba", "ribeirao preto", "santos", "sao jose dos campos", "franca", "jundiai"] },
    State { code: "RJ", zips: (20000, 28999), weight: 13, cities: &["rio de janeiro", "niteroi", "nova iguacu", "duque de caxias", "sao goncalo", "petropolis", "campos dos goytacazes", "volta redonda"] },
    State { code: "ES", zips: (29000, 29999), weight: 2, cities: &["vitoria", "vila velha", "serra", "cariacica", "guarapari"] },
    State { code: "MG", zips: (30000, 39999), weight: 12, cities: &["belo horizonte", "uberlandia", "contagem", "juiz de fora", "betim", "montes claros", "uberaba", "governador valadares"] },
    State { code: "BA", zips: (40000, 48999), weight: 3, cities: &["salvador", "feira de santana", "vitoria da conquista", "camacari", "itabuna", "lauro de freitas"] },
    State { code: "SE", zips: (49000, 49999), weight: 1, cities: &["aracaju", "nossa senhora do socorro", "lagarto"] },
    State { code: "PE", zips: (50000, 56999), weight: 2, cities: &["recife", "jaboatao dos guararapes", "olinda", "caruaru", "petrolina", "paulista"] },
    State { code: "AL", zips: (57000, 57999), weight: 1, cities: &["maceio", "arapiraca"] },
    State { code: "PB", zips: (58000, 58999), weight: 1, cities: &["joao pessoa", "campina grande", "santa rita"] },
    State { code: "RN", zips: (59000, 59999), weight: 1, cities: &["natal", "mossoro", "parnamirim"] },
    State { code: "CE", zips: (60000, 63999), weight: 1, cities: &["fortaleza", "caucaia", "juazeiro do norte", "maracanau", "sobral"] },
    State { code: "PI", zips: (64000, 64999), weight: 1, cities: &["teresina", "parnaiba"] },
    State { code: "MA", zips: (65000, 65999), weight: 1, cities: &["sao luis", "imperatriz", "timon"] },
    State { code: "PA", zips: (66000, 68899), weight: 1, cities: &["belem", "ananindeua", "santarem", "maraba"] },
    State { code: "AM", zips: (69000, 69299), weight: 1, cities: &["manaus", "parintins"] },
    State { code: "DF", zips: (70000, 72799), weight: 2, cities: &["brasilia", "taguatinga", "ceilandia", "gama"] },
    State { code: "GO", zips: (72800, 76799), weight: 2, cities: &["goiania", "aparecida de goiania", "anapolis", "rio verde"] },
    State { code: "MT", zips: (78000, 78899), weight: 1, cities: &["cuiaba", "varzea grande", "rondonopolis", "sinop"] },
    State { code: "MS", zips: (79000, 79999), weight: 1, cities: &["campo grande", "dourados", "tres lagoas"] },
    State { code: "PR", zips: (80000, 87999), weight: 5, cities: &["curitiba", "londrina", "maringa", "ponta grossa", "cascavel", "foz do iguacu"] },
    State { code: "SC", zips: (88000, 89999), weight: 4, cities: &["florianopolis", "joinville", "blumenau", "sao jose", "itajai", "chapeco"] },
    State { code: "RS", zips: (90000, 99999), weight: 6, cities: &["porto alegre", "caxias do sul", "canoas", "pelotas", "santa maria", "novo hamburgo", "gravatai"] },
];

/// One row's five fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub customer_id: String,
    pub customer_unique_id: String,
    /// Five digits, leading zeros kept (as in the data set).
    pub zip: String,
    pub city: &'static str,
    pub state: &'static str,
}

impl Row {
    /// The row as the data set writes it: every field quoted.
    pub fn to_csv(&self) -> String {
        format!(
            "\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"",
            self.customer_id, self.customer_unique_id, self.zip, self.city, self.state
        )
    }
}

/// Reproducible rows: the same seed gives the same rows.
pub struct Rows {
    rng: StdRng,
    total_weight: u32,
}

impl Rows {
    pub fn new(seed: u64) -> Rows {
        Rows {
            rng: StdRng::seed_from_u64(seed),
            total_weight: STATES.iter().map(|s| s.weight).sum(),
        }
    }

    fn hex_id(&mut self) -> String {
        format!("{:032x}", self.rng.random::<u128>())
    }
}

impl Iterator for Rows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let mut pick = self.rng.random_range(0..self.total_weight);
        let state = STATES
            .iter()
            .find(|s| {
                if pick < s.weight {
                    true
                } else {
                    pick -= s.weight;
                    false
                }
            })
            .unwrap_or(&STATES[0]);
        let city = state.cities[self.rng.random_range(0..state.cities.len())];
        let zip = self.rng.random_range(state.zips.0..=state.zips.1);
        Some(Row {
            customer_id: self.hex_id(),
            customer_unique_id: self.hex_id(),
            zip: format!("{zip:05}"),
            city,
            state: state.code,
        })
    }
}

/// Writes the header and `count` rows to `out`.
pub fn write(out: &mut impl Write, count: u64, seed: u64) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for row in Rows::new(seed).take(usize::try_from(count).unwrap_or(usize::MAX)) {
        writeln!(out, "{}", row.to_csv())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Customer, RegionMap};

    #[test]
    fn rows_are_reproducible_valid_and_spread_over_every_region() {
        let a: Vec<Row> = Rows::new(7).take(2000).collect();
        let b: Vec<Row> = Rows::new(7).take(2000).collect();
        assert_eq!(a, b);
        assert_ne!(a, Rows::new(8).take(2000).collect::<Vec<_>>());
        let regions = RegionMap::default_regions();
        let mut per_region = std::collections::BTreeMap::new();
        for row in &a {
            assert_eq!(row.customer_id.len(), 32);
            assert_eq!(row.zip.len(), 5);
            let body = serde_json::json!({
                "customer_id": row.customer_id, "customer_unique_id": row.customer_unique_id,
                "customer_zip_code_prefix": row.zip, "customer_city": row.city,
                "customer_state": row.state,
            });
            let customer = Customer::parse(body.as_object().unwrap()).expect("valid row");
            let region = regions
                .route(customer.customer_zip_code_prefix)
                .expect("routed");
            *per_region.entry(region.id.to_string()).or_insert(0) += 1;
        }
        assert_eq!(per_region.len(), 3, "{per_region:?}");
        assert!(per_region.values().all(|n| *n > 100), "{per_region:?}");
    }

    #[test]
    fn output_has_the_olist_header_and_quoted_fields() {
        let mut out = Vec::new();
        write(&mut out, 2, 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with('"') && lines[1].matches("\",\"").count() == 4);
    }
}
